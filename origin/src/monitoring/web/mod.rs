//! The admin web: the JSON endpoints of API.md's system section and the dashboard page with
//! its login. Handlers read `monitoring::Handles`; each checks the admin credentials first.

pub mod dashboard;
pub mod login;
pub mod page;
pub mod session;
pub mod svg;
pub mod tables;
