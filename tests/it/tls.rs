//! Test certificates made with the `openssl` command: a CA, and a server certificate for
//! 127.0.0.1 and a client certificate it signed.
use std::path::Path;
use std::process::Command;

/// Whether the `openssl` command is there; when not, says the test is skipped.
pub fn have_openssl() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        eprintln!("SKIPPED: the openssl command is needed to make test certificates");
    }
    found
}

/// Runs `openssl` in `dir` with `args` (split at spaces).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split(' '))
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args}: {err}");
}

/// Writes into `dir` a CA (`ca.pem`, `ca.key`), a server certificate for 127.0.0.1
/// (`server.pem`, `server.key`) and a client certificate (`client.pem`, `client.key`), both
/// signed by the CA.
pub fn certificates(dir: &Path) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(
        dir,
        &format!("req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca"),
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        openssl(
            dir,
            &format!("req {key} -keyout {who}.key -out {who}.csr -subj /CN={who}"),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                 -out {who}.pem -days 2 -extfile {who}.ext"
            ),
        );
    }
}
