//! The triggers, what calls a component: [`http`] for `[[trigger.http]]`
//! (with Spin's [`routes`] and [`headers`]) and [`redis`] for
//! `[[trigger.redis]]`.

pub mod headers;
pub mod http;
pub mod redis;
pub mod routes;
