//! The backup engine. See `backup.rs`.
