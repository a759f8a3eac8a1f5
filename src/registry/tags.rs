//! "Did you mean": the existing tags closest to one that does not exist.

/// At most `limit` tags closest to `wanted`, best first. A tag qualifies when its edit
/// distance is small relative to the length of the wanted tag, or when it extends it.
/// Ties go to the greater tag (usually the newer version).
pub fn closest(wanted: &str, tags: &[String], limit: usize) -> Vec<String> {
    let max_distance = (wanted.chars().count() / 2).max(2);
    let mut scored: Vec<(usize, &String)> = tags
        .iter()
        .filter(|t| t.as_str() != wanted)
        .filter_map(|t| {
            // A tag that extends the wanted one (`1.25` → `1.25.3`) is the best guess, one
            // the wanted one extends (`1.25-typo` → `1.25`) the next best.
            if t.starts_with(wanted) {
                return Some((0, t));
            }
            if t.chars().count() >= 2 && wanted.starts_with(t.as_str()) {
                return Some((1, t));
            }
            let d = levenshtein(wanted, t);
            let shared = common_prefix(wanted, t);
            (d <= max_distance || shared >= 4).then_some((d, t))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
    scored
        .into_iter()
        .take(limit)
        .map(|(_, t)| t.clone())
        .collect()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Edit distance over characters, bounded in cost by the (short) tag lengths.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(256).collect();
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[rstest]
    #[case("1.25", &["1.24", "1.25.3", "1.26", "latest", "2.0"], &["1.25.3", "1.26", "1.24"])]
    #[case("lates", &["latest", "stable"], &["latest"])]
    #[case("v1.2.3", &["1.2.3", "v1.2.4", "v2"], &["v1.2.4", "1.2.3"])]
    #[case("zzzzzzzz", &["latest", "1.0"], &[])]
    #[case("x", &[], &[])]
    #[case("1.25-typo", &["1.24", "1.25", "1.25.3", "1.27"], &["1.25", "1.25.3"])]
    fn suggestions(#[case] wanted: &str, #[case] have: &[&str], #[case] want: &[&str]) {
        assert_eq!(closest(wanted, &tags(have), 3), tags(want));
    }

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("1.25", "1.25"), 0);
    }
}
