//! What the fixture tests share.

use matih_connector_testkit::Fixture;
use mysql_async::OptsBuilder;

/// Options for a plain mysql_async client of the fixture (no driver in
/// between), as `user`.
pub fn raw_opts(fx: &Fixture, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(fx.require("HOST").to_owned())
        .tcp_port(fx.port())
        .user(Some(user.to_owned()))
        .pass(Some(password.to_owned()))
        .prefer_socket(false)
}
