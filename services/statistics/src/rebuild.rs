//! SKELETON — to be written.
