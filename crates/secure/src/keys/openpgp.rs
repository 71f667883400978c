//! Facts about an OpenPGP public key (RFC 9580) and which of its components
//! carepost may encrypt to.
//!
//! rPGP parses packets and checks single signatures; deciding what a key's
//! self-signatures add up to (expiry, revocation, which subkey encrypts) is
//! done here, conservatively: any valid self-made revocation revokes.

use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{KeyFlags, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};
use time::OffsetDateTime;

use super::{KeyError, Unusable, email_in, from_unix};

/// A self-signed revocation found on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgpRevocation {
    /// The reason string the owner gave, if any.
    pub reason: Option<String>,
    /// When the revocation was made.
    pub at: Option<OffsetDateTime>,
}

/// What the self-signatures say about one key component (primary or subkey).
#[derive(Debug, Clone)]
struct ComponentStatus {
    created: OffsetDateTime,
    expires: Option<OffsetDateTime>,
    revocation: Option<PgpRevocation>,
    flags: KeyFlags,
    /// Whether a valid binding (or self-certification) exists at all.
    bound: bool,
    algorithm_can_encrypt: bool,
    algorithm_can_sign: bool,
}

impl ComponentStatus {
    fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.bound && self.revocation.is_none() && now >= self.created && self.expires.is_none_or(|e| now < e)
    }

    fn usable_for_encryption(&self, now: OffsetDateTime) -> bool {
        self.valid_at(now) && self.algorithm_can_encrypt && (self.flags.encrypt_comms() || self.flags.encrypt_storage())
    }

    fn usable_for_signing(&self, now: OffsetDateTime) -> bool {
        self.valid_at(now) && self.algorithm_can_sign && self.flags.sign()
    }
}

/// The component of a key that makes signatures.
pub(crate) enum SigningComponent {
    Primary,
    Subkey(pgp::types::Fingerprint),
}

/// The component of a key that a message is encrypted to.
pub(crate) enum EncryptionTarget<'a> {
    Primary(&'a SignedPublicKey),
    Subkey(&'a SignedPublicSubKey),
}

/// A parsed OpenPGP public key (certificate) with its self-signatures evaluated.
#[derive(Debug, Clone)]
pub struct OpenPgpKey {
    key: SignedPublicKey,
    /// Primary key fingerprint, uppercase hex.
    pub fingerprint: String,
    /// User ids carrying a valid, unrevoked self-certification.
    pub user_ids: Vec<String>,
    /// E-mail addresses found in those user ids, lowercased.
    pub emails: Vec<String>,
    /// Creation time of the primary key.
    pub created: OffsetDateTime,
    /// Expiry of the primary key, from its newest valid self-signature.
    pub expires: Option<OffsetDateTime>,
    /// Set when the primary key carries a valid self-made revocation.
    pub revocation: Option<PgpRevocation>,
    primary: ComponentStatus,
    subkeys: Vec<ComponentStatus>,
}

impl OpenPgpKey {
    /// Parses exactly one key, ASCII-armored or binary.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::parse_many(bytes)?.into_iter().next().ok_or(KeyError::Empty)
    }

    /// Parses every key in the input (a WKD answer or keyring may hold several).
    /// Keys that fail to parse make the whole input fail.
    pub fn parse_many(bytes: &[u8]) -> Result<Vec<Self>, KeyError> {
        let keys = SignedPublicKey::from_reader_many(bytes).map_err(|e| KeyError::OpenPgp(e.to_string()))?.0;
        let mut out = Vec::new();
        for key in keys {
            let key = key.map_err(|e| KeyError::OpenPgp(e.to_string()))?;
            out.push(Self::from_signed(key));
        }
        if out.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(out)
    }

    /// Evaluates the self-signatures of an already parsed key.
    pub fn from_signed(key: SignedPublicKey) -> Self {
        let primary_key = &key.primary_key;
        let created = timestamp(primary_key.created_at().as_secs());

        let revocation = key
            .details
            .revocation_signatures
            .iter()
            .filter(|sig| sig.typ() == Some(SignatureType::KeyRevocation))
            .find(|sig| sig.verify_key(primary_key).is_ok())
            .map(revocation_of);

        // The newest valid self-signature over the primary key decides its
        // flags and expiry: direct-key signatures and user id certifications.
        let mut self_signatures: Vec<&Signature> = key
            .details
            .direct_signatures
            .iter()
            .filter(|sig| sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary_key).is_ok())
            .collect();
        let mut user_ids = Vec::new();
        let mut emails = Vec::new();
        for user in &key.details.users {
            let mut certifications = Vec::new();
            let mut revoked = false;
            for sig in &user.signatures {
                if sig.verify_certification(primary_key, Tag::UserId, &user.id).is_err() {
                    continue;
                }
                if sig.typ() == Some(SignatureType::CertRevocation) {
                    revoked = true;
                } else {
                    certifications.push(sig);
                }
            }
            if revoked || certifications.is_empty() {
                continue;
            }
            self_signatures.extend(certifications);
            let text = String::from_utf8_lossy(user.id.id()).into_owned();
            if let Some(address) = email_in(&text)
                && !emails.contains(&address)
            {
                emails.push(address);
            }
            user_ids.push(text);
        }
        let newest_self = newest(self_signatures.iter().copied());
        let primary = ComponentStatus {
            created,
            expires: newest_self.and_then(|sig| expiry(created, sig)),
            revocation: revocation.clone(),
            flags: newest_self.map(Signature::key_flags).unwrap_or_default(),
            bound: newest_self.is_some(),
            algorithm_can_encrypt: primary_key.algorithm().can_encrypt(),
            algorithm_can_sign: primary_key.algorithm().can_sign(),
        };

        let subkeys = key
            .public_subkeys
            .iter()
            .map(|subkey| {
                let sub_created = timestamp(subkey.key.created_at().as_secs());
                let valid: Vec<&Signature> = subkey
                    .signatures
                    .iter()
                    .filter(|sig| sig.verify_subkey_binding(primary_key, &subkey.key).is_ok())
                    .collect();
                let sub_revocation = valid
                    .iter()
                    .find(|sig| sig.typ() == Some(SignatureType::SubkeyRevocation))
                    .map(|sig| revocation_of(sig));
                let binding =
                    newest(valid.iter().copied().filter(|sig| sig.typ() == Some(SignatureType::SubkeyBinding)));
                ComponentStatus {
                    created: sub_created,
                    expires: binding.and_then(|sig| expiry(sub_created, sig)),
                    revocation: sub_revocation,
                    flags: binding.map(Signature::key_flags).unwrap_or_default(),
                    bound: binding.is_some(),
                    algorithm_can_encrypt: subkey.key.algorithm().can_encrypt(),
                    algorithm_can_sign: subkey.key.algorithm().can_sign(),
                }
            })
            .collect();

        OpenPgpKey {
            fingerprint: format!("{:X}", key.fingerprint()),
            user_ids,
            emails,
            created,
            expires: primary.expires,
            revocation,
            primary,
            subkeys,
            key,
        }
    }

    /// The parsed key as rPGP sees it.
    pub fn signed_public_key(&self) -> &SignedPublicKey {
        &self.key
    }

    /// Whether a valid user id names `address` (case-insensitive).
    pub fn has_email(&self, address: &str) -> bool {
        let wanted = address.trim().to_lowercase();
        self.emails.contains(&wanted)
    }

    /// Whether carepost may encrypt to this key at `now`: the primary key is
    /// not revoked, not expired, not from the future, carries at least one
    /// valid user id, and some component (preferably a subkey) is bound,
    /// unrevoked, unexpired and flagged for encryption.
    pub fn usable_for_encryption(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        self.encryption_target(now).map(|_| ())
    }

    /// The component that signs at `now`: the primary key if it is flagged
    /// for signing, else the newest valid signing subkey.
    pub(crate) fn signing_component(&self, now: OffsetDateTime) -> Result<SigningComponent, Unusable> {
        self.check_primary(now)?;
        if self.primary.usable_for_signing(now) {
            return Ok(SigningComponent::Primary);
        }
        self.subkeys
            .iter()
            .zip(&self.key.public_subkeys)
            .filter(|(status, _)| status.usable_for_signing(now))
            .max_by_key(|(status, _)| status.created)
            .map(|(_, subkey)| SigningComponent::Subkey(subkey.key.fingerprint()))
            .ok_or(Unusable::NoSigningKey)
    }

    /// Revocation, validity period and user ids of the primary key.
    fn check_primary(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        if let Some(revocation) = &self.revocation {
            return Err(Unusable::Revoked(revocation.reason.clone()));
        }
        if now < self.created {
            return Err(Unusable::NotYetValid(self.created));
        }
        if let Some(expires) = self.expires
            && now >= expires
        {
            return Err(Unusable::Expired(expires));
        }
        if self.user_ids.is_empty() {
            return Err(Unusable::NoValidUserId);
        }
        Ok(())
    }

    /// The component to encrypt to at `now` (the newest usable encryption
    /// subkey, else the primary key if it is itself flagged for encryption).
    pub(crate) fn encryption_target(&self, now: OffsetDateTime) -> Result<EncryptionTarget<'_>, Unusable> {
        self.check_primary(now)?;
        let best_subkey = self
            .subkeys
            .iter()
            .zip(&self.key.public_subkeys)
            .filter(|(status, _)| status.usable_for_encryption(now))
            .max_by_key(|(status, _)| status.created);
        if let Some((_, subkey)) = best_subkey {
            return Ok(EncryptionTarget::Subkey(subkey));
        }
        if self.primary.usable_for_encryption(now) {
            return Ok(EncryptionTarget::Primary(&self.key));
        }
        Err(Unusable::NoEncryptionKey)
    }
}

fn timestamp(secs: u32) -> OffsetDateTime {
    from_unix(i64::from(secs))
}

fn created_secs(sig: &Signature) -> u32 {
    sig.created().map(|t| t.as_secs()).unwrap_or(0)
}

fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|sig| created_secs(sig))
}

/// Key expiry from a self-signature: creation + KeyExpirationTime, where 0
/// or absence means "does not expire".
fn expiry(created: OffsetDateTime, sig: &Signature) -> Option<OffsetDateTime> {
    let lifetime = std::time::Duration::from(sig.key_expiration_time()?).as_secs();
    if lifetime == 0 {
        return None;
    }
    Some(from_unix(created.unix_timestamp().saturating_add(lifetime as i64)))
}

fn revocation_of(sig: &Signature) -> PgpRevocation {
    PgpRevocation {
        reason: sig
            .revocation_reason_string()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .filter(|r| !r.is_empty()),
        at: sig.created().map(|t| timestamp(t.as_secs())),
    }
}
