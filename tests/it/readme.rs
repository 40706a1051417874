//! What the README links to: each crate it names points at the crate's own repository, as
//! the crate's metadata gives it, not at its registry page.
const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_links_crates_to_their_own_repositories() {
    for (name, repository) in [
        ("redb", "https://github.com/cberner/redb"),
        ("`yaml_serde`", "https://github.com/yaml/yaml-serde"),
        ("`backon`", "https://github.com/Xuanwo/backon"),
    ] {
        let link = format!("[{name}]({repository})");
        assert!(README.contains(&link), "README links {name} as {link}");
    }
    assert!(
        !README.contains("crates.io/crates/"),
        "no crate is linked to its registry page"
    );
}
