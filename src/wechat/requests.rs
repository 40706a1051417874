//! What the official web client sends for each of its requests, as data:
//! `src/wechat/requests/official.json`, one table per mode (plain web and desktop). The client
//! stamps its headers from it (`client/stamp.rs`) and the project's fake checks every request
//! against the same file, so the two cannot drift apart. The file's header names its sources
//! and every entry marks what they do not confirm.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The table's text, as the fake also reads it.
pub const OFFICIAL_JSON: &str = include_str!("requests/official.json");

/// The whole file.
#[derive(Debug, Deserialize)]
pub struct Table {
    /// `web` and `desktop`.
    pub modes: BTreeMap<String, Mode>,
    /// Header sets by name, shared by the requests of one kind (an XHR, a script, an image…).
    pub header_sets: BTreeMap<String, HeaderSet>,
    /// One entry per request the official client makes.
    pub requests: Vec<Request>,
}

/// What differs between the modes for every request.
#[derive(Debug, Deserialize)]
pub struct Mode {
    /// The User-Agent.
    pub user_agent: String,
    /// The page's URL, the Referer of same-host requests (`{page}` is its origin).
    pub page_url: String,
}

/// The headers of one kind of request.
#[derive(Debug, Deserialize)]
pub struct HeaderSet {
    /// Name to value template.
    pub headers: BTreeMap<String, String>,
}

/// One request of the official client.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The last path segment.
    pub endpoint: String,
    /// `GET` or `POST`.
    pub method: String,
    /// `login`, `api`, `file` or `push`.
    pub host: String,
    /// The query parameters in order; `name=value` fixes a value.
    pub query: Vec<String>,
    /// The name of its header set.
    pub headers: String,
    /// Desktop mode's differences.
    #[serde(default)]
    pub desktop: Option<Override>,
    /// The order of a JSON body's members.
    #[serde(default)]
    pub body: Vec<String>,
    /// The order of the body's `Msg` members.
    #[serde(default)]
    pub msg: Vec<String>,
}

/// What desktop mode changes in a request.
#[derive(Debug, Deserialize)]
pub struct Override {
    /// Its query instead.
    #[serde(default)]
    pub query: Option<Vec<String>>,
    /// Its header set instead.
    #[serde(default)]
    pub headers: Option<String>,
}

/// The table, read once. The file is part of the build, and a unit test reads it, so a
/// malformed file never reaches a release.
pub fn official() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| serde_json::from_str(OFFICIAL_JSON).expect("official.json is valid"))
}

impl Table {
    /// The entry for `endpoint`.
    pub fn request(&self, endpoint: &str) -> Option<&Request> {
        self.requests.iter().find(|r| r.endpoint == endpoint)
    }

    /// The headers the official client sends on `endpoint` in a mode, with `{page}` (the
    /// page's origin, no trailing slash), `{user_agent}`, `{page_url}` and `{extspam}` filled
    /// in. A value ending in `{own}` is returned as it is: its tail is the request's own (a
    /// multipart boundary).
    pub fn headers(&self, endpoint: &str, desktop: bool, page: &str) -> Vec<(String, String)> {
        let Some(req) = self.request(endpoint) else {
            return Vec::new();
        };
        let mode = &self.modes[if desktop { "desktop" } else { "web" }];
        let set = desktop
            .then(|| req.desktop.as_ref().and_then(|d| d.headers.as_deref()))
            .flatten()
            .unwrap_or(&req.headers);
        let Some(set) = self.header_sets.get(set) else {
            return Vec::new();
        };
        let page_url = mode.page_url.replace("{page}", page);
        set.headers
            .iter()
            .map(|(name, value)| {
                let value = value
                    .replace("{user_agent}", &mode.user_agent)
                    .replace("{page_url}", &page_url)
                    .replace("{extspam}", super::protocol::EXTSPAM)
                    .replace("{page}", page);
                (name.clone(), value)
            })
            .collect()
    }

    /// The query parameter names of `endpoint` in a mode, in order.
    pub fn query(&self, endpoint: &str, desktop: bool) -> Vec<&str> {
        let Some(req) = self.request(endpoint) else {
            return Vec::new();
        };
        let query = desktop
            .then(|| req.desktop.as_ref().and_then(|d| d.query.as_ref()))
            .flatten()
            .unwrap_or(&req.query);
        query
            .iter()
            .map(|q| q.split_once('=').map_or(q.as_str(), |(name, _)| name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_and_every_request_names_a_header_set_that_exists() {
        let table = official();
        assert!(table.requests.len() >= 20);
        for req in &table.requests {
            let sets = [
                Some(&req.headers),
                req.desktop.as_ref().and_then(|d| d.headers.as_ref()),
            ];
            for set in sets.into_iter().flatten() {
                assert!(
                    table.header_sets.contains_key(set),
                    "{}: {set}",
                    req.endpoint
                );
            }
            assert!(["login", "api", "file", "push"].contains(&req.host.as_str()));
        }
    }

    #[test]
    fn desktop_mode_changes_the_user_agent_and_stamps_the_login_headers() {
        let table = official();
        let web = table.headers("webwxnewloginpage", false, "https://wx.qq.com");
        let desktop = table.headers("webwxnewloginpage", true, "https://wx.qq.com");
        let get = |h: &[(String, String)], name: &str| {
            h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&web, "extspam"), None);
        assert_eq!(
            get(&desktop, "extspam").as_deref(),
            Some(crate::wechat::protocol::EXTSPAM)
        );
        assert_eq!(get(&desktop, "client-version").as_deref(), Some("2.0.0"));
        assert_eq!(
            get(&desktop, "Referer").as_deref(),
            Some("https://wx.qq.com/?&lang=zh_CN&target=t")
        );
        assert!(get(&desktop, "User-Agent").unwrap().contains("UOS"));
        assert!(!get(&web, "User-Agent").unwrap().contains("UOS"));
        assert_eq!(
            table.query("webwxsendappmsg", true),
            ["fun", "f", "mod", "lang", "pass_ticket"]
        );
    }
}
