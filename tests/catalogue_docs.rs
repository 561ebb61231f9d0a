//! The README's provider table against the catalogue it documents: one row
//! per entry, no row for a kind that does not exist, and each row naming
//! the entry's default base URL, key variable, URL variables and doc page,
//! so neither can change without the other.

use shardgate::providers::catalog::CATALOG;

/// The README's `### Providers` table rows, by kind.
fn rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n### Providers\n")
        .nth(1)
        .expect("a ### Providers section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| kind |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let kind = l.split('|').nth(1).unwrap().trim().trim_matches('`');
            (kind.to_string(), l.to_string())
        })
        .collect()
}

#[test]
fn readme_table_has_a_row_per_catalogue_entry_and_no_other() {
    let rows = rows();
    let kinds: Vec<_> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
    assert_eq!(kinds, names, "README rows vs catalogue order");
}

#[test]
fn each_row_states_the_entrys_facts() {
    let rows = rows();
    for e in CATALOG {
        let (_, row) = rows.iter().find(|(k, _)| k == e.name).unwrap();
        let mut facts = vec![format!("({})", e.doc)];
        facts.extend(e.default_base_url.map(|u| format!("`{u}`")));
        facts.extend(e.key_var.map(|k| format!("`{k}`")));
        facts.extend(e.url_vars.iter().map(|v| format!("`{}`", v.var())));
        for f in facts {
            assert!(row.contains(&f), "{}: row lacks {f}\n{row}", e.name);
        }
    }
}
