//! Linux fanotify engine. See ARCHITECTURE.md.
