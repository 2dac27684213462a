//! Hosted sites. Until the virtual filesystem lands, the root site is the landing page
//! embedded in the binary and every other site answers with the built-in 404 page, both
//! through the same response path stored files use (`files::respond`).

use crate::files::{respond, StoredFile};
use crate::http::{Request, Response};

pub struct Sites {
    landing: StoredFile,
    not_found: StoredFile,
}

impl Sites {
    pub fn embedded() -> Sites {
        Sites {
            landing: StoredFile::from_static(
                include_bytes!("../assets/landing.html"),
                "text/html; charset=utf-8",
                "no-cache",
            ),
            not_found: StoredFile::from_static(
                include_bytes!("../assets/404.html"),
                "text/html; charset=utf-8",
                "no-cache",
            ),
        }
    }

    pub fn serve(&self, site: &str, request: &Request) -> Response {
        match (site, request.path()) {
            ("root", "/" | "/index.html") => respond(request, &self.landing, 200),
            _ => respond(request, &self.not_found, 404),
        }
    }
}
