//! What clients upload and send: uploads in progress (by ClientMediaId), finished uploads
//! (by MediaId, with their bytes), `webwxcheckupload` grants, and accepted media sends.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::record::{SentMedia, Upload};

/// An upload whose chunks are still arriving.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The first chunk's `uploadmediarequest` without its BaseRequest (whose DeviceID may
    /// change per request): every chunk must repeat it.
    pub request: Value,
    /// The first chunk's other form fields (`name`, `size`, `chunks`, `mediatype`…).
    pub fields: Vec<(String, String)>,
    pub chunks: usize,
    pub next: usize,
    pub bytes: Vec<u8>,
}

/// A `webwxcheckupload` answer, by FileMd5.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub size: u64,
    pub aes_key: String,
    pub signature: String,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub pending: HashMap<String, Pending>,
    /// Finished uploads in order.
    pub uploads: Vec<Upload>,
    /// MediaId → (index in `uploads`, the session's sid, the bytes).
    pub by_media_id: HashMap<String, (usize, String, Arc<Vec<u8>>)>,
    pub grants: HashMap<String, Grant>,
    pub sent: Vec<SentMedia>,
}
