//! A software WebAuthn authenticator: a P-256 key pair (aws-lc-rs) that answers a server's
//! registration options with a "none" attestation and its challenges with ES256 assertions,
//! byte for byte as a USB security key would through a browser. The server verifies what it
//! makes with webauthn-rs; nothing here is trusted by carepost.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub struct SoftKey {
    key: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    counter: u32,
    /// The browser origin the client data names.
    origin: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A challenge as the server sent it (base64url, padded or not) back to bytes.
fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).or_else(|_| URL_SAFE.decode(text)).expect("base64url")
}

/// CBOR (RFC 8949) heads: major type and length.
fn head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=255 => out.extend([m | 24, len as u8]),
        _ => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn text(s: &str, out: &mut Vec<u8>) {
    head(3, s.len(), out);
    out.extend(s.as_bytes());
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    head(2, b.len(), out);
    out.extend(b);
}

/// A small integer key or value: non-negative (major 0) or negative (major 1).
fn int(n: i8, out: &mut Vec<u8>) {
    if n >= 0 { head(0, n as usize, out) } else { head(1, (-1 - n) as usize, out) }
}

impl SoftKey {
    pub fn new(origin: &str) -> SoftKey {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let mut credential_id = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut credential_id).unwrap();
        SoftKey { key, credential_id, counter: 0, origin: origin.to_owned() }
    }

    /// The public key as a COSE_Key: EC2, ES256, P-256, x, y.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
        let mut out = Vec::new();
        head(5, 5, &mut out);
        int(1, &mut out);
        int(2, &mut out);
        int(3, &mut out);
        int(-7, &mut out);
        int(-1, &mut out);
        int(1, &mut out);
        int(-2, &mut out);
        bytes(&point[1..33], &mut out);
        int(-3, &mut out);
        bytes(&point[33..], &mut out);
        out
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": b64(&unb64(challenge)), "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// Answers `navigator.credentials.create` options (`{"publicKey": ...}` as the server
    /// sent them) with a new credential.
    pub fn register(&mut self, options: &Value) -> Value {
        let options = &options["publicKey"];
        let rp_id = options["rp"]["id"].as_str().expect("rp.id");
        let client_data = self.client_data("webauthn.create", options["challenge"].as_str().expect("challenge"));
        let mut auth_data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth_data.push(0x01 | 0x04 | 0x40); // user present, user verified, attested credential data
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        head(5, 3, &mut attestation);
        text("fmt", &mut attestation);
        text("none", &mut attestation);
        text("attStmt", &mut attestation);
        head(5, 0, &mut attestation);
        text("authData", &mut attestation);
        bytes(&auth_data, &mut attestation);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
                "transports": ["usb"],
            },
        })
    }

    /// Answers `navigator.credentials.get` options with a signed assertion.
    pub fn sign(&mut self, options: &Value) -> Value {
        let options = &options["publicKey"];
        let rp_id = options["rpId"].as_str().expect("rpId");
        let client_data = self.client_data("webauthn.get", options["challenge"].as_str().expect("challenge"));
        self.counter += 1;
        let mut auth_data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth_data.push(0x01 | 0x04);
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(digest(&SHA256, &client_data).as_ref());
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": null,
            },
        })
    }
}
