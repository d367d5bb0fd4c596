//! SCRAM (Salted Challenge Response Authentication Mechanism, RFC 5802) with SHA-256 and
//! SHA-512 (RFC 7677; Kafka's KIP-84): the credentials the broker stores and the four messages
//! of one exchange.
//!
//! The broker never keeps a password. For each user and hash it keeps a [`ScramCredential`]:
//! a random salt, an iteration count, and two keys derived from the password,
//! `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`, where
//! `SaltedPassword = PBKDF2(password, salt, iterations)`. A client proves it knows the password
//! by sending `ClientKey XOR HMAC(StoredKey, AuthMessage)`; the broker recovers `ClientKey`,
//! hashes it and compares with `StoredKey`. The broker proves it holds the credential by
//! answering `HMAC(ServerKey, AuthMessage)`. `AuthMessage` joins the three messages exchanged
//! before the proof, so a proof is bound to this exchange's nonces and cannot be replayed.
//!
//! The exchange:
//! ```text
//! client-first:  n,,n=alice,r=<client nonce>
//! server-first:  r=<client nonce><server nonce>,s=<base64 salt>,i=4096
//! client-final:  c=biws,r=<client nonce><server nonce>,p=<base64 proof>
//! server-final:  v=<base64 server signature>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;

/// The fewest PBKDF2 iterations a credential may have: Kafka's minimum for both SCRAM hashes.
pub const ITERATIONS_MIN: u32 = 4096;
/// The most: Kafka's maximum (`ScramMechanism.maxIterations`), which bounds the broker's work
/// for one PLAIN login checked against a SCRAM credential.
pub const ITERATIONS_MAX: u32 = 16384;

/// The two SCRAM hashes Kafka speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name, as clients configure it (`sasl.mechanism`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's number in KIP-554's DescribeUserScramCredentials and
    /// AlterUserScramCredentials (`ScramMechanism.type`: 1 and 2; 0 is unknown).
    pub fn wire(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_wire(v: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.wire() == v)
    }

    /// Bytes of one hash output.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        let out = match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        };
        assert_eq!(out.len(), self.hash_len());
        out
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts a key of any length, so `new_from_slice` cannot fail.
        let out = match self {
            ScramMechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        };
        assert_eq!(out.len(), self.hash_len());
        out
    }

    /// `Hi(password, salt, i)` of RFC 5802: PBKDF2 with this hash's HMAC. What a KIP-554
    /// AlterUserScramCredentials upsertion carries (the client salts; the password never
    /// leaves it).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// What the broker stores for one user and one SCRAM hash (Kafka's `ScramCredential`, kept in
/// the metadata log as a `UserScramCredentialRecord`, KIP-554): never the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Derive the credential for `password` with a `salt` the caller drew (the core has no
    /// entropy: the runtime draws salts from the operating system, the simulator from its seed).
    pub fn derive(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        assert!(!salt.is_empty(), "a SCRAM salt is never empty");
        assert!(
            (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations),
            "iterations {iterations} outside Kafka's {ITERATIONS_MIN}..={ITERATIONS_MAX}"
        );
        let salted = mechanism.salted_password(password, salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// The credential for a salted password (KIP-554: AlterUserScramCredentials carries the
    /// salt and `SaltedPassword`, and the controller derives the two keys from them, as Kafka's
    /// `ScramControlManager` does). The caller checks the lengths and iterations first.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        assert_eq!(
            salted.len(),
            mechanism.hash_len(),
            "SaltedPassword is one hash"
        );
        let client_key = mechanism.hmac(salted, b"Client Key");
        let cred = ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        };
        assert!(cred.is_valid(), "checked by the caller: salt, iterations");
        cred
    }

    /// Whether `password` is the one this credential was derived from: how a PLAIN login is
    /// checked against the SCRAM store, which holds no passwords.
    pub fn matches_password(&self, password: &[u8]) -> bool {
        let again = ScramCredential::derive(self.mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&again.stored_key, &self.stored_key)
    }

    /// Whether the credential is well formed: keys of the hash's length, iterations in range.
    /// Checked where credentials enter (a metadata record, a request).
    pub fn is_valid(&self) -> bool {
        self.stored_key.len() == self.mechanism.hash_len()
            && self.server_key.len() == self.mechanism.hash_len()
            && !self.salt.is_empty()
            && (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&self.iterations)
    }
}

/// Compare two byte strings in time that depends only on their lengths, so a wrong proof does
/// not tell an attacker how many of its leading bytes were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's first message, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name, with RFC 5802's `=2C` and `=3D` escapes undone.
    pub user: String,
    pub client_nonce: String,
    /// `client-first-message-bare`: the message without its GS2 header, part of `AuthMessage`.
    pub bare: String,
    /// The GS2 header (`n,,` or `n,a=alice,`), which the final message repeats in base64.
    pub gs2_header: String,
}

/// Parse `client-first-message`. Channel binding (`p=`) is refused: Kafka does not offer it.
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, String> {
    let text = std::str::from_utf8(msg).map_err(|_| "client-first message is not UTF-8")?;
    let (cbind, rest) = text
        .split_once(',')
        .ok_or("client-first message has no GS2 header")?;
    match cbind {
        "n" | "y" => {}
        _ if cbind.starts_with("p=") => return Err("channel binding is not supported".into()),
        _ => return Err(format!("bad GS2 channel-binding flag {cbind:?}")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or("client-first message has no authzid field")?;
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(format!("bad GS2 authzid field {authzid:?}"));
    }
    let mut fields = bare.split(',');
    let user = match fields.next() {
        Some(f) if f.starts_with("m=") => {
            return Err("mandatory SCRAM extensions are not supported".into())
        }
        Some(f) => unescape_name(f.strip_prefix("n=").ok_or("first attribute is not n=")?)?,
        None => return Err("empty client-first message".into()),
    };
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or("second attribute is not r=")?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(is_nonce_char) {
        return Err("client nonce is empty or not printable".into());
    }
    // Later attributes are extensions (Kafka's `tokenauth=true`, KIP-48): allowed and ignored.
    let first = ClientFirst {
        user,
        client_nonce: client_nonce.to_string(),
        bare: bare.to_string(),
        gs2_header: format!("{cbind},{authzid},"),
    };
    assert!(first.bare.len() < msg.len(), "the bare message is a suffix");
    Ok(first)
}

/// RFC 5802's `printable` minus `,`: the characters a nonce may hold.
fn is_nonce_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// Undo `=2C` → `,` and `=3D` → `=` in a `saslname`; any other `=` is an error.
fn unescape_name(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or("");
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(format!("bad escape in user name {s:?}")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err("empty user name".into());
    }
    Ok(out)
}

/// The server's first message: the combined nonce, the salt and the iteration count.
pub fn server_first(first: &ClientFirst, server_nonce: &str, cred: &ScramCredential) -> String {
    assert!(!server_nonce.is_empty() && server_nonce.bytes().all(is_nonce_char));
    format!(
        "r={}{server_nonce},s={},i={}",
        first.client_nonce,
        B64.encode(&cred.salt),
        cred.iterations
    )
}

/// The client's final message, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinal {
    /// The channel-binding attribute's value, decoded: the GS2 header again.
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    /// Everything before `,p=`: part of `AuthMessage`.
    pub without_proof: String,
    pub proof: Vec<u8>,
}

/// Parse `client-final-message`.
pub fn parse_client_final(msg: &[u8]) -> Result<ClientFinal, String> {
    let text = std::str::from_utf8(msg).map_err(|_| "client-final message is not UTF-8")?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or("client-final message has no proof")?;
    let mut fields = without_proof.split(',');
    let cb = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .ok_or("first attribute is not c=")?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or("second attribute is not r=")?;
    let final_ = ClientFinal {
        channel_binding: B64
            .decode(cb)
            .map_err(|_| "channel binding is not base64")?,
        nonce: nonce.to_string(),
        without_proof: without_proof.to_string(),
        proof: B64.decode(proof).map_err(|_| "proof is not base64")?,
    };
    assert!(final_.without_proof.len() < text.len());
    Ok(final_)
}

/// Check the client's proof. On success, the server's final message (`v=` and the server
/// signature); on failure, why, for the log (never the proof itself).
pub fn verify_client_final(
    cred: &ScramCredential,
    first: &ClientFirst,
    server_first: &str,
    last: &ClientFinal,
) -> Result<String, String> {
    let expected_nonce = server_first
        .strip_prefix("r=")
        .and_then(|s| s.split(',').next())
        .expect("server_first() starts with r=");
    // Kafka's check (`ScramSaslServer`): the final nonce *ends with* this exchange's. librdkafka
    // before 2.1 (Debian's kcat) sends the client nonce twice, `r=<client><client><server>`, and
    // Kafka accepts it. The server's random part is still required, so a replay still fails.
    if !last.nonce.ends_with(expected_nonce) {
        return Err("the final message's nonce is not this exchange's (replayed or forged)".into());
    }
    if last.channel_binding != first.gs2_header.as_bytes() {
        return Err("the final message's channel binding does not repeat the GS2 header".into());
    }
    if last.proof.len() != cred.mechanism.hash_len() {
        return Err(format!(
            "a proof of {} bytes, not {}",
            last.proof.len(),
            cred.mechanism.hash_len()
        ));
    }
    let auth_message = format!("{},{server_first},{}", first.bare, last.without_proof);
    let m = cred.mechanism;
    let client_signature = m.hmac(&cred.stored_key, auth_message.as_bytes());
    let client_key: Vec<u8> = last
        .proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !constant_time_eq(&m.hash(&client_key), &cred.stored_key) {
        return Err("wrong password (the client's proof does not match)".into());
    }
    let server_signature = m.hmac(&cred.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)))
}

/// A client's side of the exchange, for gregor's own tests and tools: the final message for a
/// password, given the two first messages.
pub fn client_final_for(
    mechanism: ScramMechanism,
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
) -> Result<String, String> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for f in server_first.split(',') {
        if let Some(v) = f.strip_prefix("r=") {
            nonce = Some(v);
        } else if let Some(v) = f.strip_prefix("s=") {
            salt = B64.decode(v).ok();
        } else if let Some(v) = f.strip_prefix("i=") {
            iterations = v.parse::<u32>().ok();
        }
    }
    let (nonce, salt, iterations) = match (nonce, salt, iterations) {
        (Some(n), Some(s), Some(i)) if (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&i) => (n, s, i),
        _ => return Err(format!("bad server-first message {server_first:?}")),
    };
    let cred = ScramCredential::derive(mechanism, password, &salt, iterations);
    let salted = mechanism.salted_password(password, &salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&cred.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    Ok(format!("{without_proof},p={}", B64.encode(proof)))
}

/// The credentials a broker checks logins against: user → hash → SCRAM credential, and the
/// PLAIN users. Never a password.
///
/// The SCRAM ones are cluster metadata (KIP-554): the controller writes them to the metadata
/// log (`UserScramCredential` records) and every broker replays them into its image, so a user
/// added through one broker logs into every other. The PLAIN ones are the broker's own TOML
/// `[users]` (Kafka's PLAIN reads its JAAS file, not the metadata log), kept as a salted hash of
/// the password ([`Credentials::set_plain`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    plain: BTreeMap<String, ScramCredential>,
}

impl Credentials {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    /// Add or replace one credential.
    pub fn upsert(&mut self, user: &str, cred: ScramCredential) {
        assert!(cred.is_valid(), "only well-formed credentials are stored");
        self.users
            .entry(user.to_string())
            .or_default()
            .insert(cred.mechanism, cred);
    }

    /// Remove one credential; whether there was one.
    pub fn remove(&mut self, user: &str, mechanism: ScramMechanism) -> bool {
        let Some(m) = self.users.get_mut(user) else {
            return false;
        };
        let removed = m.remove(&mechanism).is_some();
        if m.is_empty() {
            self.users.remove(user);
        }
        removed
    }

    /// Every user with the mechanisms they have credentials for, in name order.
    pub fn users(&self) -> impl Iterator<Item = (&str, Vec<&ScramCredential>)> {
        self.users
            .iter()
            .map(|(u, m)| (u.as_str(), m.values().collect()))
    }

    /// Make `user` a PLAIN user whose password derives `hashed` (a credential derived from
    /// the password with a salt the caller drew; the password itself is not kept).
    pub fn set_plain(&mut self, user: &str, hashed: ScramCredential) {
        assert!(hashed.is_valid(), "only well-formed credentials are stored");
        self.plain.insert(user.to_string(), hashed);
    }

    /// The SCRAM users replaced by `from`'s (a newer metadata image's), the PLAIN users kept.
    /// Whether anything changed.
    pub fn replace_scram(&mut self, from: &Credentials) -> bool {
        let changed = self.users != from.users;
        if changed {
            self.users = from.users.clone();
        }
        assert_eq!(self.users, from.users);
        changed
    }

    /// A PLAIN login, checked against the PLAIN users (gregor keeps no plain passwords): the
    /// password is right if it derives the stored hash.
    pub fn check_password(&self, user: &str, password: &[u8]) -> bool {
        self.plain
            .get(user)
            .is_some_and(|c| c.matches_password(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's test vector: user "user", password "pencil", SCRAM-SHA-256.
    #[test]
    fn rfc_7677_exchange_verifies() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::derive(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let sf = server_first(&first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &cred);
        assert_eq!(
            sf,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = parse_client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").unwrap();
        assert_eq!(
            verify_client_final(&cred, &first, &sf, &last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(cred.matches_password(b"pencil"));
        assert!(!cred.matches_password(b"pencil2"));
    }

    #[test]
    fn our_client_and_server_agree_and_a_wrong_password_fails() {
        for m in ScramMechanism::ALL {
            let cred = ScramCredential::derive(m, b"secret", b"salty", 4096);
            assert!(cred.is_valid());
            let first = parse_client_first(b"n,,n=al=2Cice,r=abc,tokenauth=false").unwrap();
            assert_eq!(first.user, "al,ice");
            let sf = server_first(&first, "XYZ", &cred);
            let good = client_final_for(m, b"secret", &first.bare, &sf).unwrap();
            let last = parse_client_final(good.as_bytes()).unwrap();
            assert!(verify_client_final(&cred, &first, &sf, &last)
                .unwrap()
                .starts_with("v="));
            let bad = client_final_for(m, b"guess", &first.bare, &sf).unwrap();
            let last = parse_client_final(bad.as_bytes()).unwrap();
            assert!(verify_client_final(&cred, &first, &sf, &last).is_err());
            // The same final message answered to a new server nonce: a replay, refused.
            let sf2 = server_first(&first, "OTHER", &cred);
            let replay = parse_client_final(good.as_bytes()).unwrap();
            let err = verify_client_final(&cred, &first, &sf2, &replay).unwrap_err();
            assert!(err.contains("replayed"), "{err}");
            // librdkafka 2.0's doubled client nonce passes, as Kafka lets it.
            let doubled = good.replacen("r=abc", "r=abcabc", 1);
            let last = parse_client_final(doubled.as_bytes()).unwrap();
            assert!(
                verify_client_final(&cred, &first, &sf, &last).is_err(),
                "the proof covers the nonce"
            );
        }
    }

    #[test]
    fn malformed_first_messages_are_refused() {
        for bad in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=u,r=x",
            b"n,,r=x",
            b"n,,n=u",
            b"n,,n=,r=x",
            b"n,,n=a=5,r=x",
            b"n,,m=ext,n=u,r=x",
            b"\xff,,n=u,r=x",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        assert!(parse_client_final(b"c=biws,r=x").is_err());
        assert!(parse_client_final(b"c=!!,r=x,p=AA==").is_err());
    }
}
