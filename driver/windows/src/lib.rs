//! Windows minifilter. See ARCHITECTURE.md.
#![cfg_attr(not(test), no_std)]
