//! std side of the audit pipeline (flush writer, reader). See ARCHITECTURE.md.
