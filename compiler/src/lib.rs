//! The policy compiler. See ARCHITECTURE.md.
