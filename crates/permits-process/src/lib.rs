//! Process-level permits (work in progress: the jobserver client and server
//! and the named crash-safe semaphore land with their issue).
