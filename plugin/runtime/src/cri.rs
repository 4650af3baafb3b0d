//! The CRI image proxy (placeholder until the next commit).
