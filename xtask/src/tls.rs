//! A private CA and a server certificate for a fixture, made with the openssl CLI
//! (present on every Debian machine, and no crypto crate to compile for xtask).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::util::{ensure_dir, find_program, random_token, run_ok, set_mode};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Paths of a fixture's TLS material.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Creates (once) `dir/ca.pem`, `dir/server.pem` and `dir/server.key`. The
/// server certificate's SANs are IP:127.0.0.1 and DNS:localhost; the CA key is
/// deleted after signing, so nothing else can ever be signed with it.
pub fn ensure_certs(dir: &Path, subject: &str) -> Result<TlsFiles> {
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    if files.ca_cert.is_file() && files.server_cert.is_file() && files.server_key.is_file() {
        return Ok(files);
    }
    let openssl = find_program("openssl", &[], "openssl")?;
    ensure_dir(dir)?;
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("server.ext");
    run_ok(
        Command::new(&openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-sha256",
            ])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca_cert)
            .args([
                "-subj",
                &format!("/O=MATIH test fixtures/CN=MATIH {subject} test CA"),
            ])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        "openssl (CA)",
        TIMEOUT,
    )?;
    run_ok(
        Command::new(&openssl)
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-sha256"])
            .arg("-keyout")
            .arg(&files.server_key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/O=MATIH test fixtures/CN={subject}")]),
        "openssl (server key)",
        TIMEOUT,
    )?;
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid,issuer\n",
    )?;
    // A random serial: two fixtures' certificates never look alike to a client cache.
    let serial = format!("0x1{}", hex_digits(&random_token(15)?));
    run_ok(
        Command::new(&openssl)
            .args([
                "x509",
                "-req",
                "-days",
                "3650",
                "-sha256",
                "-set_serial",
                &serial,
            ])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&files.ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&files.server_cert),
        "openssl (sign server certificate)",
        TIMEOUT,
    )?;
    let _ = fs::remove_file(&csr);
    let _ = fs::remove_file(&ext);
    let _ = fs::remove_file(&ca_key);
    set_mode(&files.server_key, 0o600)?;
    set_mode(&files.ca_cert, 0o644)?;
    set_mode(&files.server_cert, 0o644)?;
    Ok(files)
}

fn hex_digits(token: &str) -> String {
    token.bytes().map(|b| format!("{:x}", b % 16)).collect()
}
