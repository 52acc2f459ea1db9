//! After the show: what was on screen and when (`onscreen`, the hash-chained record), the
//! recordings of the output (`recording`) and the object store they may move to (`archive`),
//! and what the shoppable replay page follows
//! (`replay`). Restreaming is the engine's (`fieldcast_engine::restream`).

pub mod archive;
pub mod onscreen;
pub mod recording;
pub mod replay;
