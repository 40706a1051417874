//! Media bytes that look like the real kind of each message, so a client's MIME sniffing,
//! image-size probing and hashing see what they would see from the real servers: a baseline
//! JPEG of the message's pixel size, MPEG audio frames behind an ID3 tag, an MP4 (`ftyp`
//! first), a GIF, and for files bytes that open the way the extension's format does.
//!
//! Every generator is deterministic in its `seed` (derived from the MsgId, see [`seed`]), so
//! a test can compare what a client stored with [`FakeWeChat::media_bytes`], and two messages
//! never share bytes. A requested length pads the file inside the format (JPEG comment
//! segments, GIF comment blocks, ID3 padding, the MP4 `mdat` box), so it stays valid; below
//! the kind's smallest valid file the smallest valid file wins.
//!
//! [`FakeWeChat::media_bytes`]: crate::FakeWeChat::media_bytes

/// A seed from an id (FNV-1a, 64 bit): stable across runs and platforms.
pub(crate) fn seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The text every file carries near its start, so bytes of two messages always differ.
fn tag(seed: u64) -> Vec<u8> {
    format!("wxbridge-fake {seed:016x}").into_bytes()
}

/// Pseudo-random filler, deterministic in `seed`.
fn filler(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = vec![0u8; n];
    rng.fill(&mut out);
    out
}

// ---- JPEG ----

/// Standard luminance DC table (ITU T.81 K.3): code lengths, then symbols 0..=11.
const DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
/// A one-code AC table: only end-of-block (symbol 0), as `0`. Every block is flat, so no
/// other AC symbol is ever written.
const AC_BITS: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Canonical Huffman codes `(code, length)` by symbol, from a DHT's code-length counts.
fn huffman(bits: &[u8; 16], symbols: usize) -> Vec<(u16, u8)> {
    let mut out = Vec::with_capacity(symbols);
    let mut code = 0u16;
    for (i, &n) in bits.iter().enumerate() {
        for _ in 0..n {
            out.push((code, i as u8 + 1));
            code += 1;
        }
        code <<= 1;
    }
    out
}

/// Writes entropy-coded bits MSB first with JPEG byte stuffing (`FF` → `FF 00`).
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u8,
}

impl BitWriter {
    fn put(&mut self, value: u16, len: u8) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | u32::from((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    /// Pads the last byte with 1 bits, as T.81 F.1.2.3 asks.
    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 2) as u16;
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// Segments of `marker` (4 + payload bytes each, payload at most 65,533) adding up to exactly
/// `total` bytes, the first payload starting with `head`. `total` is at least `4 + head.len()`.
fn padding_segments(marker: u8, head: &[u8], total: usize, seed: u64) -> Vec<u8> {
    const MAX: usize = 65_533;
    let mut body = head.to_vec();
    body.extend(filler(seed ^ 0x5a5a, total.saturating_sub(4 + head.len())));
    let mut out = Vec::with_capacity(total);
    let mut rest = total;
    let mut at = 0;
    while rest > 0 {
        let mut payload = (rest - 4).min(MAX);
        // A segment is at least 4 bytes: never leave 1..=3 behind.
        if (1..4).contains(&(rest - 4 - payload)) {
            payload -= 4;
        }
        let take = payload.min(body.len() - at);
        out.extend(segment(marker, &body[at..at + take]));
        at += take;
        rest -= 4 + payload;
    }
    out
}

/// A baseline grayscale JPEG of `w`×`h` pixels (clamped to 1..=65,535): flat 8×8 blocks in
/// a pattern drawn from `seed`, `len` bytes long when that is above its natural size.
pub(crate) fn jpeg(seed: u64, w: u32, h: u32, len: Option<u64>) -> Vec<u8> {
    let (w, h) = (w.clamp(1, 65_535), h.clamp(1, 65_535));
    let mut head = vec![0xFF, 0xD8];
    head.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    let mut tail = segment(0xDB, &[[0u8].as_slice(), &[1u8; 64]].concat());
    let mut sof = vec![8];
    sof.extend_from_slice(&(h as u16).to_be_bytes());
    sof.extend_from_slice(&(w as u16).to_be_bytes());
    sof.extend_from_slice(&[1, 1, 0x11, 0]);
    tail.extend(segment(0xC0, &sof));
    let dht = |class: u8, bits: &[u8; 16], symbols: &[u8]| {
        let mut p = vec![class];
        p.extend_from_slice(bits);
        p.extend_from_slice(symbols);
        segment(0xC4, &p)
    };
    tail.extend(dht(0x00, &DC_BITS, &(0..12).collect::<Vec<u8>>()));
    tail.extend(dht(0x10, &AC_BITS, &[0]));
    tail.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    let dc = huffman(&DC_BITS, 12);
    let (eob, eob_len) = huffman(&AC_BITS, 1)[0];
    let mut bits = BitWriter {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let (bw, bh) = (w.div_ceil(8), h.div_ceil(8));
    let mut prev = 0i32;
    for by in 0..bh {
        for bx in 0..bw {
            // A gradient with noise: a recognisable picture, different per seed.
            let level =
                ((bx * 255 / bw.max(1) + by * 128 / bh.max(1)) / 2) as i32 + rng.i32(-24..=24) + 16;
            let value = 8 * (level.clamp(0, 255) - 128);
            let diff = value - prev;
            prev = value;
            let cat = (32 - diff.unsigned_abs().leading_zeros()) as u8;
            let (code, code_len) = dc[cat as usize];
            bits.put(code, code_len);
            if cat > 0 {
                let extra = if diff >= 0 {
                    diff
                } else {
                    diff + (1 << cat) - 1
                };
                bits.put(extra as u16, cat);
            }
            bits.put(eob, eob_len);
        }
    }
    tail.extend(bits.finish());
    tail.extend_from_slice(&[0xFF, 0xD9]);
    let tag = tag(seed);
    let natural = head.len() + tail.len() + 4 + tag.len();
    let total = len.map_or(natural, |l| (l as usize).max(natural));
    head.extend(padding_segments(
        0xFE,
        &tag,
        total - head.len() - tail.len(),
        seed,
    ));
    head.extend(tail);
    head
}

// ---- GIF ----

/// Lengths of GIF data sub-blocks (each 1 + 1..=255 bytes) adding up to exactly `total`
/// (at least 2).
fn sub_block_lengths(total: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = total;
    while rest > 0 {
        let take = match rest {
            257 => 255, // leave 2, not an impossible 1
            r if r > 256 => 256,
            r => r,
        };
        out.push(take - 1);
        rest -= take;
    }
    out
}

fn sub_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 255 + 2);
    for chunk in data.chunks(255) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out.push(0);
    out
}

/// A GIF89a of `w`×`h` pixels in four colours drawn from `seed`, `len` bytes long when that
/// is above its natural size (the padding is a comment extension).
pub(crate) fn gif(seed: u64, w: u32, h: u32, len: Option<u64>) -> Vec<u8> {
    let (w, h) = (w.clamp(1, 65_535), h.clamp(1, 65_535));
    let mut head = b"GIF89a".to_vec();
    head.extend_from_slice(&(w as u16).to_le_bytes());
    head.extend_from_slice(&(h as u16).to_le_bytes());
    head.extend_from_slice(&[0x91, 0, 0]); // global table of 4 colours
    head.extend(filler(seed, 12));
    let mut tail = vec![0x2C, 0, 0, 0, 0];
    tail.extend_from_slice(&(w as u16).to_le_bytes());
    tail.extend_from_slice(&(h as u16).to_le_bytes());
    tail.extend_from_slice(&[0, 2]); // no local table; LZW minimum code size 2
                                     // LZW with 3-bit codes throughout: a clear code before every two pixels keeps the code
                                     // table from ever growing past 7, so no decoder has to widen its codes.
    let (clear, end) = (4u32, 5u32);
    let mut packed = Vec::new();
    let (mut acc, mut n) = (0u32, 0u32);
    let mut put = |code: u32, packed: &mut Vec<u8>| {
        acc |= code << n;
        n += 3;
        while n >= 8 {
            packed.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    };
    let shift = (seed % 4) as u32;
    for i in 0..w * h {
        if i % 2 == 0 {
            put(clear, &mut packed);
        }
        let (x, y) = (i % w, i / w);
        put((x / 16 + y / 16 + shift) % 4, &mut packed);
    }
    put(end, &mut packed);
    if n > 0 {
        packed.push(acc as u8);
    }
    tail.extend(sub_blocks(&packed));
    tail.push(0x3B);
    let tag = tag(seed);
    let natural = head.len() + tail.len() + 3 + 1 + tag.len();
    let total = len.map_or(natural, |l| (l as usize).max(natural));
    let lengths = sub_block_lengths(total - head.len() - tail.len() - 3);
    let mut text = tag;
    let want: usize = lengths.iter().sum();
    text.extend(filler(seed ^ 0xa5a5, want - text.len()));
    head.extend_from_slice(&[0x21, 0xFE]);
    let mut at = 0;
    for l in lengths {
        head.push(l as u8);
        head.extend_from_slice(&text[at..at + l]);
        at += l;
    }
    head.push(0);
    head.extend(tail);
    head
}

// ---- MP3 ----

/// MPEG-1 Layer III, 32 kbit/s, 32 kHz, mono, no CRC: 144-byte frames of 36 ms.
const MP3_HEADER: [u8; 4] = [0xFF, 0xFB, 0x18, 0xC0];
const MP3_FRAME: usize = 144;
const MP3_FRAME_MS: u64 = 36;

/// An ID3v2.3 tag (a PRIV frame with the seed, then padding) and silent MP3 frames: enough
/// frames for `duration_ms`, or `len` bytes in all when given.
pub(crate) fn mp3(seed: u64, duration_ms: u64, len: Option<u64>) -> Vec<u8> {
    let mut priv_frame = b"PRIV".to_vec();
    let owner = b"wxbridge-fake\0";
    priv_frame.extend_from_slice(&((owner.len() + 8) as u32).to_be_bytes());
    priv_frame.extend_from_slice(&[0, 0]);
    priv_frame.extend_from_slice(owner);
    priv_frame.extend_from_slice(&seed.to_be_bytes());
    let min_tag = priv_frame.len();
    let (frames, tag_len) = match len {
        Some(l) => {
            let room = (l as usize).saturating_sub(10 + min_tag);
            let frames = (room / MP3_FRAME).max(1);
            (
                frames,
                (l as usize)
                    .saturating_sub(10 + frames * MP3_FRAME)
                    .max(min_tag),
            )
        }
        None => (
            (duration_ms.div_ceil(MP3_FRAME_MS)).max(1) as usize,
            min_tag,
        ),
    };
    let mut out = Vec::with_capacity(10 + tag_len + frames * MP3_FRAME);
    out.extend_from_slice(b"ID3\x03\0\0");
    let size = tag_len as u32; // syncsafe: 7 bits a byte
    out.extend([21, 14, 7, 0].map(|s| ((size >> s) & 0x7F) as u8));
    out.extend(priv_frame);
    out.resize(10 + tag_len, 0);
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..frames {
        out.extend_from_slice(&MP3_HEADER);
        // 17 zero bytes of side information (no main data: silence), then ancillary bytes
        // that decoders skip, drawn from the seed.
        out.extend_from_slice(&[0; 17]);
        out.extend((0..MP3_FRAME - 4 - 17).map(|_| rng.u8(..)));
    }
    out
}

// ---- MP4 ----

/// An MP4: `ftyp` (isom), a `free` box with the seed, and an `mdat` box of filler making it
/// `len` bytes long (default 128 KiB).
pub(crate) fn mp4(seed: u64, len: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&32u32.to_be_bytes());
    out.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2avc1mp41");
    let tag = tag(seed);
    out.extend_from_slice(&((8 + tag.len()) as u32).to_be_bytes());
    out.extend_from_slice(b"free");
    out.extend(tag);
    let total = (len.unwrap_or(128 * 1024) as usize).max(out.len() + 8);
    let mdat = total - out.len();
    out.extend_from_slice(&(mdat as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend(filler(seed, mdat - 8));
    out
}

// ---- files ----

/// A file of exactly `len` bytes whose start matches its extension's format (`%PDF-` for
/// pdf, a zip local header for the Office formats, a JPEG for jpg…); unknown extensions get
/// filler.
pub(crate) fn file(seed: u64, name: &str, len: u64) -> Vec<u8> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let n = len as usize;
    let fit = |mut head: Vec<u8>, trailer: &[u8]| {
        let room = n.saturating_sub(head.len() + trailer.len());
        head.extend(filler(seed, room));
        head.extend_from_slice(trailer);
        head.truncate(n);
        head
    };
    let text = |s: String| s.into_bytes();
    match ext.as_str() {
        "pdf" => fit(text(format!("%PDF-1.4\n% {seed:016x}\n")), b"\n%%EOF\n"),
        "jpg" | "jpeg" => shrink(jpeg(seed, 64, 48, Some(len)), n),
        "gif" => shrink(gif(seed, 32, 32, Some(len)), n),
        "mp4" | "mov" | "m4v" => shrink(mp4(seed, Some(len)), n),
        "mp3" => shrink(mp3(seed, 1_000, Some(len)), n),
        "png" => fit(b"\x89PNG\r\n\x1a\n".to_vec(), b""),
        "zip" | "docx" | "xlsx" | "pptx" | "apk" | "jar" => {
            let entry: &[u8] = match ext.as_str() {
                "docx" => b"word/document.xml",
                "xlsx" => b"xl/workbook.xml",
                "pptx" => b"ppt/presentation.xml",
                "apk" | "jar" => b"META-INF/MANIFEST.MF",
                _ => b"data.bin",
            };
            let mut head = b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0".to_vec();
            head.extend_from_slice(&(seed as u32).to_le_bytes()); // crc-32 field
            head.extend_from_slice(&[0; 8]);
            head.extend_from_slice(&(entry.len() as u16).to_le_bytes());
            head.extend_from_slice(&[0, 0]);
            head.extend_from_slice(entry);
            fit(head, b"")
        }
        "doc" | "xls" | "ppt" => fit(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec(), b""),
        "rar" => fit(b"Rar!\x1A\x07\x00".to_vec(), b""),
        "7z" => fit(b"7z\xBC\xAF\x27\x1C".to_vec(), b""),
        "gz" | "tgz" => fit(b"\x1F\x8B\x08\0".to_vec(), b""),
        "txt" | "csv" | "log" | "md" | "json" | "xml" => {
            let mut out = Vec::with_capacity(n);
            let mut line = 0u64;
            while out.len() < n {
                out.extend(text(format!("line {line} of {seed:016x}\n")));
                line += 1;
            }
            out.truncate(n);
            out
        }
        _ => fit(tag(seed), b""),
    }
}

/// A generated file cut to `n` bytes if a format's minimum made it longer (FileSize rules).
fn shrink(mut v: Vec<u8>, n: usize) -> Vec<u8> {
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from a JPEG's SOF0, walking the segments as a decoder does.
    fn jpeg_size(b: &[u8]) -> (u32, u32) {
        let mut at = 2;
        while b[at + 1] != 0xC0 {
            assert_eq!(b[at], 0xFF);
            at += 2 + u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        }
        let h = u16::from_be_bytes([b[at + 5], b[at + 6]]);
        let w = u16::from_be_bytes([b[at + 7], b[at + 8]]);
        (w.into(), h.into())
    }

    #[test]
    fn a_jpeg_has_the_asked_size_in_pixels_and_bytes() {
        let j = jpeg(1, 90, 120, None);
        assert_eq!(&j[..3], &[0xFF, 0xD8, 0xFF]);
        assert_eq!(&j[j.len() - 2..], &[0xFF, 0xD9]);
        assert_eq!(jpeg_size(&j), (90, 120));
        for len in [
            j.len() as u64 + 1,
            j.len() as u64 + 3,
            200_000,
            65_537 * 2 + 2,
        ] {
            let padded = jpeg(1, 90, 120, Some(len));
            assert_eq!(padded.len() as u64, len);
            assert_eq!(jpeg_size(&padded), (90, 120));
            assert_eq!(&padded[padded.len() - 2..], &[0xFF, 0xD9]);
        }
        assert_ne!(jpeg(2, 90, 120, None), j);
    }

    #[test]
    fn padding_segments_add_up_for_every_remainder() {
        for total in [
            20, 65_537, 65_538, 65_540, 65_541, 131_074, 131_075, 200_001,
        ] {
            let s = padding_segments(0xFE, b"head", total, 3);
            assert_eq!(s.len(), total);
            // Walk the segments: each length field covers its payload.
            let mut at = 0;
            while at < s.len() {
                assert_eq!(&s[at..at + 2], &[0xFF, 0xFE]);
                at += 2 + u16::from_be_bytes([s[at + 2], s[at + 3]]) as usize;
            }
            assert_eq!(at, total);
        }
    }

    #[test]
    fn a_gif_is_well_formed_at_any_length() {
        let g = gif(5, 240, 240, None);
        assert_eq!(&g[..6], b"GIF89a");
        assert_eq!(u16::from_le_bytes([g[6], g[7]]), 240);
        assert_eq!(*g.last().unwrap(), 0x3B);
        for extra in [1, 2, 255, 256, 257, 258, 100_000] {
            let len = g.len() as u64 + extra;
            assert_eq!(gif(5, 240, 240, Some(len)).len() as u64, len);
        }
        for total in 2..2000 {
            let l = sub_block_lengths(total);
            assert_eq!(l.iter().map(|x| x + 1).sum::<usize>(), total);
            assert!(l.iter().all(|&x| (1..=255).contains(&x)), "{total}: {l:?}");
        }
    }

    #[test]
    fn mp3_and_mp4_open_as_their_formats() {
        let m = mp3(7, 5_000, None);
        assert_eq!(&m[..3], b"ID3");
        let tag = 10
            + m[6..10]
                .iter()
                .fold(0usize, |a, &b| (a << 7) | usize::from(b));
        assert_eq!(&m[tag..tag + 4], &MP3_HEADER);
        assert_eq!((m.len() - tag) % MP3_FRAME, 0);
        assert_eq!((m.len() - tag) / MP3_FRAME, 139);
        assert_eq!(mp3(7, 5_000, Some(10_000)).len(), 10_000);
        let v = mp4(7, Some(3 << 20));
        assert_eq!(&v[4..12], b"ftypisom");
        assert_eq!(v.len(), 3 << 20);
    }

    #[test]
    fn files_start_like_their_extension_and_have_the_file_size() {
        for (name, magic) in [
            ("a.pdf", &b"%PDF-"[..]),
            ("b.docx", b"PK\x03\x04"),
            ("c.JPG", b"\xFF\xD8\xFF"),
            ("d.txt", b"line 0"),
            ("e.xls", b"\xD0\xCF\x11\xE0"),
        ] {
            let f = file(9, name, 48_213);
            assert_eq!(f.len(), 48_213, "{name}");
            assert!(f.starts_with(magic), "{name}");
        }
        assert!(file(9, "a.pdf", 48_213).ends_with(b"%%EOF\n"));
        assert_ne!(file(9, "x.bin", 100), file(10, "x.bin", 100));
        assert_eq!(file(9, "x.bin", 3).len(), 3);
    }
}
