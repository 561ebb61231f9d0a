//! The life of one proxied request: admit → route → upstream → respond → log.
