//! The official client's requests as data (the wxbridge crate's
//! `src/wechat/requests/official.json`, read here at build time so the fake and the client share
//! one table) and the check of every request against it: the method, the query parameters in
//! order with their fixed values and numbers, exactly the headers of the request's kind in the
//! session's mode, and the order of a JSON body's members. What breaks the table is a
//! strictness violation, as a broken media rule is.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

const OFFICIAL_JSON: &str = include_str!("../../src/wechat/requests/official.json");

/// Headers the HTTP transport owns (framing, cookies, compression), not the page: the table
/// leaves them out, and so does the check.
pub const TRANSPORT: &[&str] = &[
    "host",
    "cookie",
    "content-length",
    "connection",
    "accept-encoding",
    "transfer-encoding",
];

fn table() -> &'static Value {
    static TABLE: OnceLock<Value> = OnceLock::new();
    TABLE.get_or_init(|| serde_json::from_str(OFFICIAL_JSON).expect("official.json is valid"))
}

/// What a request looked like, for [`check`].
pub(crate) struct Seen<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    /// Lowercase names.
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
}

/// The query's parameter names in order, with their values decoded once.
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// The rules `seen` breaks in a mode; `None` when the mode is not known yet (a request before
/// any login), when it only has to match one of them.
pub(crate) fn check(seen: &Seen<'_>, desktop: Option<bool>, page: &str) -> Vec<String> {
    match desktop {
        Some(d) => check_mode(seen, d, page),
        None => {
            let web = check_mode(seen, false, page);
            if web.is_empty() {
                return web;
            }
            let desktop = check_mode(seen, true, page);
            if desktop.len() < web.len() {
                desktop
            } else {
                web
            }
        }
    }
}

fn check_mode(seen: &Seen<'_>, desktop: bool, page: &str) -> Vec<String> {
    let t = table();
    let Some(entry) = t["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["path"] == seen.path)
    else {
        return vec![format!(
            "{} {}: not a request the official client makes",
            seen.method, seen.path
        )];
    };
    let mut broken = Vec::new();
    if entry["method"] != seen.method {
        broken.push(format!(
            "method {} (the official client uses {})",
            seen.method, entry["method"]
        ));
    }
    let over = &entry["desktop"];
    let pick = |key: &str| {
        if desktop && !over[key].is_null() {
            &over[key]
        } else {
            &entry[key]
        }
    };
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };

    // The query, in order, and its fixed values.
    let want_query = strs(pick("query"));
    let got = query_pairs(seen.raw_query);
    let want_names: Vec<&str> = want_query
        .iter()
        .map(|q| q.split_once('=').map_or(q.as_str(), |(k, _)| k))
        .collect();
    let got_names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    // The official client sends each parameter once; a second one (say a `mod=desktop` the
    // redirect carried plus one appended) is its own rule, named, beside the order's.
    for (i, name) in got_names.iter().enumerate() {
        if got_names[..i].contains(name) && !got_names[i + 1..].contains(name) {
            broken.push(format!("query {name} repeated"));
        }
    }
    if want_names != got_names {
        broken.push(format!(
            "query {got_names:?}, the official order is {want_names:?}"
        ));
    }
    for fixed in &want_query {
        if let Some((k, v)) = fixed.split_once('=') {
            if let Some((_, value)) = got.iter().find(|(name, _)| name == k) {
                if value != v {
                    broken.push(format!(
                        "query {k}={value:?}, the official client sends {v:?}"
                    ));
                }
            }
        }
    }
    if let Some(numbers) = entry["numbers"].as_object() {
        for (name, kind) in numbers {
            let Some((_, value)) = got.iter().find(|(k, _)| k == name) else {
                continue;
            };
            let ok = match kind.as_str() {
                // A time in ms from 2001 to 2286 has 13 digits.
                Some("ms") => value.len() == 13 && value.parse::<u64>().is_ok(),
                Some("int32") => value.parse::<i32>().is_ok(),
                _ => value.parse::<u64>().is_ok(),
            };
            if !ok {
                broken.push(format!("query {name}={value:?} is not {kind}"));
            }
        }
    }

    // Exactly the headers of the request's kind.
    let mode = &t["modes"][if desktop { "desktop" } else { "web" }];
    let ua = mode["user_agent"].as_str().unwrap_or_default();
    let page_url = mode["page_url"]
        .as_str()
        .unwrap_or_default()
        .replace("{page}", page);
    let set = pick("headers").as_str().unwrap_or_default();
    let want: BTreeMap<String, String> = t["header_sets"][set]["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, v)| {
            let v = v
                .as_str()
                .unwrap_or_default()
                .replace("{user_agent}", ua)
                .replace("{page_url}", &page_url)
                .replace("{extspam}", crate::server::EXTSPAM)
                .replace("{page}", page);
            (name.to_ascii_lowercase(), v)
        })
        .collect();
    for (name, value) in &want {
        match seen.headers.get(name) {
            None => broken.push(format!("header {name} missing")),
            Some(got) => {
                let ok = match value.strip_suffix("{own}") {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == value,
                };
                if !ok {
                    broken.push(format!(
                        "header {name}: {got:?}, the official client sends {value:?}"
                    ));
                }
            }
        }
    }
    for name in seen.headers.keys() {
        if !want.contains_key(name) && !TRANSPORT.contains(&name.as_str()) {
            broken.push(format!(
                "header {name}, which the official client does not send"
            ));
        }
    }

    // The body's member order.
    let body = strs(&entry["body"]);
    let is_form = body.first().is_some_and(|b| b.starts_with("form:"));
    let is_multipart = seen
        .headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("multipart/"));
    if !body.is_empty() && !is_multipart {
        let (got, msg) = if is_form {
            let form = String::from_utf8_lossy(seen.body);
            (
                query_pairs(&form).into_iter().map(|(k, _)| k).collect(),
                Vec::new(),
            )
        } else {
            match serde_json::from_slice::<KeyOrder>(seen.body) {
                Ok(k) => (k.keys, k.msg),
                Err(_) => {
                    broken.push("the body is not a JSON object".to_owned());
                    (Vec::new(), Vec::new())
                }
            }
        };
        let body: Vec<String> = body
            .iter()
            .map(|b| b.strip_prefix("form:").unwrap_or(b).to_owned())
            .collect();
        if !got.is_empty() && !same_order(&body, &got) {
            broken.push(format!(
                "body members {got:?}, the official order is {body:?}"
            ));
        }
        let want_msg = strs(&entry["msg"]);
        if !want_msg.is_empty() && !same_order(&want_msg, &msg) {
            broken.push(format!(
                "Msg members {msg:?}, the official order is {want_msg:?}"
            ));
        }
    }
    broken
}

/// Whether `got` is `want` without some of its optional (`?`) members.
fn same_order(want: &[String], got: &[String]) -> bool {
    let expected: Vec<&str> = want
        .iter()
        .filter_map(|w| match w.strip_suffix('?') {
            Some(opt) => got.iter().any(|g| g == opt).then_some(opt),
            None => Some(w.as_str()),
        })
        .collect();
    expected == got.iter().map(String::as_str).collect::<Vec<_>>()
}

/// A JSON object's member names in the order they came, and those of its `Msg` object
/// (serde_json's own map sorts them).
#[derive(Default)]
struct KeyOrder {
    keys: Vec<String>,
    msg: Vec<String>,
}

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut out = KeyOrder::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "Msg" {
                        out.msg = map.next_value::<KeyOrder>()?.keys;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                    out.keys.push(key);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}
