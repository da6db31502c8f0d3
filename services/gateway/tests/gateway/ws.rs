//! WebSocket tests (next).
