//! The `netfailover` binary: a thin CLI over the library.

fn main() {
    println!("netfailover {}", env!("CARGO_PKG_VERSION"));
}
