//! STUB for the runtime branch only: the types of the contract that the runtime uses.
//! Helper FETCH's `src/serverless/fetch.rs` replaces this file at merge.

/// An outbound request a script makes.
#[derive(Clone, Debug)]
pub(crate) struct FetchRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Its answer.
#[derive(Clone, Debug)]
pub(crate) struct FetchResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// After redirects.
    pub url: String,
}
