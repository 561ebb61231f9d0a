//! Provider families: base URL, auth style and quirks, one file each.
