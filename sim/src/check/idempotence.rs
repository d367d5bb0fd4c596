//! Idempotence: with the idempotent producer (KIP-98), a value appears in the log at most once
//! (`duplicate`), however often it was retried. A plain producer's retry may duplicate.

use super::{Facts, Kind};

pub(super) fn check(f: &Facts, bad: &mut dyn FnMut(Kind, String)) {
    for (v, places) in &f.fin_by_value {
        if places.len() > 1 {
            let (idempotent, retried) = f.sent.get(v).copied().unwrap_or((false, false));
            if idempotent || !retried {
                bad(
                    Kind::Duplicate,
                    format!(
                        "value {v} appears {} times in the log: {places:?}",
                        places.len()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, fin, kinds};
    use super::super::Kind;

    #[test]
    fn duplicate_fires() {
        let mut h = clean();
        fin(&mut h).push((3, 3));
        assert!(kinds(&h).contains(&Kind::Duplicate));
    }
}
