//! The one place that puts headers on a WeChat request: those the official client sends on
//! that request in the client's mode, read from the request table
//! ([`crate::wechat::requests`]). Every request of [`WxClient`] passes through here right
//! before it is sent, so none leaves with a header the official client would not send (no
//! library User-Agent, no stray Accept) or without one it would.
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::RequestBuilder;
use url::Url;

use super::WxClient;
use crate::wechat::requests;

/// The origin of `url`, without a trailing slash: what `{page}` stands for.
pub(super) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl WxClient {
    /// The page's origin before there is a session: the login host's without its `login.`
    /// (`login.wx.qq.com` serves the page `wx.qq.com`); a host of another shape is the page.
    pub(super) fn login_page(&self) -> String {
        let mut url = self.login_origin.clone();
        if let Some(page) = url.host_str().and_then(|h| h.strip_prefix("login.")) {
            let page = page.to_owned();
            let _ = url.set_host(Some(&page));
        }
        origin(&url)
    }

    /// Sets the headers of `endpoint` for this client's mode, `page` being the page's origin.
    /// A header the request set itself (a form's or a multipart body's Content-Type) is
    /// replaced, except where the table leaves its tail to the request (a boundary).
    pub(super) fn stamp(&self, req: RequestBuilder, endpoint: &str, page: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        for (name, value) in requests::official().headers(endpoint, self.desktop_mode, page) {
            if value.ends_with("{own}") {
                continue;
            }
            // The table is part of the build and its unit test reads every value, so these
            // conversions only fail on a page origin that is not a header value, which a
            // parsed URL's origin always is.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        req.headers(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(login_url: &str) -> String {
        let client = WxClient::new(Url::parse(login_url).unwrap(), true, Default::default());
        client.login_page()
    }

    #[test]
    fn before_a_session_the_page_is_the_login_host_without_its_login_prefix() {
        assert_eq!(page_of("https://login.wx.qq.com"), "https://wx.qq.com");
        assert_eq!(
            page_of("https://login.web.wechat.com/"),
            "https://web.wechat.com"
        );
        // A local stand-in serves the page itself.
        assert_eq!(page_of("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
    }
}
