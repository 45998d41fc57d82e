//! The origin service's entry point (skeleton until the origin issue).

fn main() {
    println!("authz-origin {}", env!("CARGO_PKG_VERSION"));
}
