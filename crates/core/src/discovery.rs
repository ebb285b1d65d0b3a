//! What a discovery asks for: depth, name filters, statistics, sampling.

use serde::{Deserialize, Serialize};

/// How deep discovery goes. Each level includes the ones above it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// Schemas only.
    Schemas,
    /// Schemas and their tables.
    Tables,
    /// Schemas, tables and their columns (the default).
    #[default]
    Columns,
}

/// Include and exclude name patterns. Patterns are globs: `*` matches any run of
/// characters, `?` one character, `\` escapes the next one; matching is
/// case-sensitive and whole-name. No include pattern means "all".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameFilter {
    /// Patterns a name must match one of; none means all names.
    #[serde(default)]
    pub include: Vec<String>,
    /// Patterns that leave a name out, even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl NameFilter {
    /// Whether the filter lets every name through.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether `name` passes: included (or no includes) and not excluded.
    pub fn matches(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob_match(p, name)))
            && !self.exclude.iter().any(|p| glob_match(p, name))
    }

    /// The include patterns as SQL `LIKE` patterns escaped with `\`.
    pub fn include_like(&self) -> Vec<String> {
        self.include.iter().map(|p| glob_to_like(p)).collect()
    }

    /// The exclude patterns as SQL `LIKE` patterns escaped with `\`.
    pub fn exclude_like(&self) -> Vec<String> {
        self.exclude.iter().map(|p| glob_to_like(p)).collect()
    }
}

/// Translates a glob into a `LIKE` pattern with `\` as the escape character.
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '\\' => match chars.next() {
                Some(n @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(n);
                }
                Some(n) => out.push(n),
                None => out.push_str("\\\\"),
            },
            '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Whole-name glob match (`*`, `?`, `\` escape), iterative with backtracking.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            '\\' => Tok::Lit(it.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let s: Vec<char> = name.chars().collect();
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, i));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                i += 1;
            }
            Some(Tok::Lit(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Any)
}

/// A discovery request. Filters are pushed down to the source wherever it can
/// evaluate them. Unknown fields are refused, as in every request body: a
/// misspelt filter must not silently discover everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryRequest {
    /// How deep to go.
    #[serde(default)]
    pub depth: Depth,
    /// Which schemas.
    #[serde(default)]
    pub schemas: NameFilter,
    /// Which tables (within the schemas kept).
    #[serde(default)]
    pub tables: NameFilter,
    /// Row estimates and sizes.
    #[serde(default = "yes")]
    pub statistics: bool,
    /// Documents, objects or messages read per table when fields must be inferred.
    #[serde(default = "default_sample")]
    pub sample_size: u32,
    /// Include the source's own system schemas (pg_catalog, mysql…).
    #[serde(default)]
    pub include_system: bool,
}

fn yes() -> bool {
    true
}

fn default_sample() -> u32 {
    100
}

impl Default for DiscoveryRequest {
    fn default() -> Self {
        DiscoveryRequest {
            depth: Depth::Columns,
            schemas: NameFilter::default(),
            tables: NameFilter::default(),
            statistics: true,
            sample_size: default_sample(),
            include_system: false,
        }
    }
}

impl DiscoveryRequest {
    /// This request at another depth.
    pub fn with_depth(mut self, depth: Depth) -> Self {
        self.depth = depth;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        let cases = [
            ("*", "anything", true),
            ("sales_*", "sales_2024", true),
            ("sales_*", "Sales_2024", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*x*y", "axbxcy", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("ünï*", "ünïcode", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn glob_to_like_escapes_like_metacharacters() {
        assert_eq!(glob_to_like("sales_*"), "sales\\_%");
        assert_eq!(glob_to_like("100%?"), "100\\%_");
        assert_eq!(glob_to_like("a\\*b"), "a*b");
        assert_eq!(glob_to_like("back\\\\slash"), "back\\\\slash");
    }

    #[test]
    fn filter_semantics() {
        let f = NameFilter {
            include: vec!["s*".into()],
            exclude: vec!["s_tmp*".into()],
        };
        assert!(f.matches("sales"));
        assert!(!f.matches("s_tmp1"));
        assert!(!f.matches("other"));
        assert!(NameFilter::default().matches("x"));
    }
}
