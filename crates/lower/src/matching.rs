//! Maximum bipartite matching (Kuhn's augmenting paths) between algebraic
//! rules and the variables they could determine. Models have a handful of
//! algebraic rules, so the simple O(V·E) algorithm is plenty.

/// `adj[r]` lists the candidate variables (0..n_vars) rule `r` mentions, in
/// order of preference. Returns the variable matched to each rule, or the
/// index of a rule that cannot get one.
pub(crate) fn match_rules(adj: &[Vec<usize>], n_vars: usize) -> Result<Vec<usize>, usize> {
    let mut owner: Vec<Option<usize>> = vec![None; n_vars];
    for r in 0..adj.len() {
        let mut seen = vec![false; n_vars];
        if !augment(r, adj, &mut owner, &mut seen) {
            return Err(r);
        }
    }
    let mut out = vec![usize::MAX; adj.len()];
    for (v, o) in owner.iter().enumerate() {
        if let Some(r) = o {
            out[*r] = v;
        }
    }
    Ok(out)
}

fn augment(r: usize, adj: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &v in &adj[r] {
        if v >= seen.len() || seen[v] {
            continue;
        }
        seen[v] = true;
        let free = match owner[v] {
            None => true,
            Some(other) => augment(other, adj, owner, seen),
        };
        if free {
            owner[v] = Some(r);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassigns_along_an_augmenting_path() {
        // Rule 0 prefers var 0, but rule 1 can only take var 0.
        assert_eq!(match_rules(&[vec![0, 1], vec![0]], 2), Ok(vec![1, 0]));
    }

    #[test]
    fn reports_the_rule_left_over() {
        assert_eq!(match_rules(&[vec![0], vec![0]], 1), Err(1));
    }
}
