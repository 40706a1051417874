# The wxbridge image. Build it yourself: `docker build -t wxbridge .` (or `docker compose build`).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wxbridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data wxbridge \
 && mkdir -p /data && chown wxbridge /data
COPY --from=build /src/target/release/wxbridge /usr/local/bin/wxbridge
USER wxbridge
WORKDIR /data
VOLUME /data
# Docker stops containers with SIGTERM, which the bridge handles gracefully.
ENTRYPOINT ["wxbridge"]
CMD ["run"]
