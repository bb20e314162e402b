// Without a build script cargo ignores the crate's build-dependencies, whose features (syn,
// proc-macro2: the proc-macro side) are half of what the crate unifies.
fn main() {}
