//! Checks that the fake WeChat server is not the bottleneck: a bare HTTP client drains the
//! same burst through synccheck + webwxsync (batches of up to 100) with the credentials of a
//! session the bridge logged in and left, reading nothing of the answers but the count and
//! the next SyncKey.
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bridge::Sinks;
use crate::env::{Env, Stage};
use crate::tally::Tally;
use crate::workload;

/// Seed of this phase's workload.
const SEED: u64 = 0xFACE;

/// How fast the fake serves a burst on its own.
#[derive(Debug, Clone, Default)]
pub struct FakeServe {
    /// Messages served per drain.
    pub messages: usize,
    /// Seconds from the first synccheck to the last webwxsync answer, per drain.
    pub serve_secs: Vec<f64>,
    /// webwxsync calls per drain.
    pub syncs: usize,
}

impl FakeServe {
    /// Messages per second served, per drain.
    pub fn rates(&self) -> Vec<f64> {
        self.serve_secs
            .iter()
            .map(|s| self.messages as f64 / s.max(1e-9))
            .collect()
    }
}

/// The only parts of a webwxsync answer the bare client reads.
#[derive(Deserialize)]
struct SyncAnswer {
    #[serde(rename = "AddMsgCount")]
    count: usize,
    #[serde(rename = "SyncKey")]
    key: Value,
}

/// Runs the check: one drain per repetition.
pub async fn run(env: &Env) -> Result<FakeServe> {
    drain(env, Duration::ZERO, env.settings.reps).await
}

/// `reps` drains from a fake that holds every answer back by `answer_delay`: the fetch-only
/// ceiling at that distance.
pub async fn drain(env: &Env, answer_delay: Duration, reps: usize) -> Result<FakeServe> {
    let stage = Stage::distant(env, env.settings.small_book, false, answer_delay).await?;
    let bridge = stage.launch(env, &Sinks::none(), Tally::new(0)).await?;
    // SIGTERM keeps the session valid at the fake.
    bridge.stop().await?;
    let s = stage.fake.session().context("the fake has no session")?;
    let base = json!({"Uin": s.uin, "Sid": s.sid, "Skey": s.skey, "DeviceID": "e102938475610293"});
    let cgi = format!("{}/cgi-bin/mmwebwx-bin", stage.fake.url());
    let http = reqwest::Client::new();
    let post = |endpoint: &str, body: Value| {
        http.post(format!("{cgi}/{endpoint}"))
            .header("content-type", "application/json;charset=UTF-8")
            .body(body.to_string())
            .send()
    };
    let init: Value = serde_json::from_slice(
        &post("webwxinit", json!({"BaseRequest": base}))
            .await?
            .bytes()
            .await?,
    )?;
    let mut key = init["SyncKey"].clone();
    let cookie = format!("wxuin={}; wxsid={}", s.uin, s.sid);
    let n = env.settings.messages;
    let mut serve_secs = Vec::new();
    let mut syncs = 0;
    for rep in 0..reps {
        for m in workload::mix(&stage.book, n, SEED + rep as u64) {
            stage.fake.queue(m);
        }
        let t0 = Instant::now();
        let (mut got, mut calls) = (0, 0);
        while got < n {
            let url = reqwest::Url::parse_with_params(
                &format!("{cgi}/synccheck"),
                [
                    ("uin", s.uin.to_string()),
                    ("sid", s.sid.clone()),
                    ("skey", s.skey.clone()),
                    ("synckey", synccheck_key(&key)),
                ],
            )?;
            let check = http
                .get(url)
                .header("cookie", &cookie)
                .send()
                .await?
                .text()
                .await?;
            if !check.contains("selector:\"2\"") {
                bail!(
                    "synccheck answered {check} with {} messages still queued",
                    n - got
                );
            }
            let body = post(
                "webwxsync",
                json!({"BaseRequest": base, "SyncKey": key, "rr": -1}),
            )
            .await?
            .bytes()
            .await?;
            let answer: SyncAnswer = serde_json::from_slice(&body)?;
            if answer.count == 0 {
                bail!(
                    "webwxsync returned nothing with {} messages still queued",
                    n - got
                );
            }
            got += answer.count;
            calls += 1;
            key = answer.key;
        }
        serve_secs.push(t0.elapsed().as_secs_f64());
        syncs = calls;
    }
    Ok(FakeServe {
        messages: n,
        serve_secs,
        syncs,
    })
}

/// A SyncKey object as synccheck's `synckey` parameter: `1_x|2_y|…`.
fn synccheck_key(key: &Value) -> String {
    key["List"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|k| format!("{}_{}", k["Key"], k["Val"]))
                .collect::<Vec<_>>()
                .join("|")
        })
        .unwrap_or_default()
}
