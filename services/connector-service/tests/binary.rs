//! The binary as README starts it: no arguments, embedded defaults (SQLite and
//! local secrets under ./matih-data of its working directory), and `mint-token`
//! agreeing with it on the generated signing secret. Only the port is moved off
//! 8080 so the test cannot collide with a service already running there.

use std::process::{Command, Stdio};
use std::time::Duration;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn starts_on_defaults_and_mint_token_agrees() {
    matih_connector_core::tls::install_default_provider();
    let bin = env!("CARGO_BIN_EXE_matih-connector-service");
    let cwd = std::env::temp_dir().join(format!("matih-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&cwd).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clean = |c: &mut Command| {
        for (k, _) in std::env::vars() {
            if k.starts_with("MATIH_") {
                c.env_remove(k);
            }
        }
    };
    let mut serve = Command::new(bin);
    clean(&mut serve);
    serve.env_remove("GLIBC_TUNABLES");
    let _child = Kill(
        serve
            .current_dir(&cwd)
            .env("MATIH_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the service did not become ready");
    // The process that answers is the one spawned, started again in place
    // with one malloc arena (`malloc::limit_arenas`): same pid, the tunable
    // in its environment.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let environ = std::fs::read(format!("/proc/{}/environ", _child.0.id())).unwrap();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|v| v == b"GLIBC_TUNABLES=glibc.malloc.arena_max=1"),
            "the serving process runs with one malloc arena"
        );
    }
    for f in ["matih.db", "secret.key", "jwt.secret"] {
        assert!(
            cwd.join("matih-data").join(f).exists(),
            "{f} under ./matih-data"
        );
        // The metadata database is private like the key files.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cwd.join("matih-data").join(f))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{f} is mode 0600");
    }

    let mut mint = Command::new(bin);
    clean(&mut mint);
    let out = mint.current_dir(&cwd).arg("mint-token").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Acme", "slug": "acme", "tier": "FREE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tenant: serde_json::Value = r.json().await.unwrap();
    let id = tenant["id"].as_str().unwrap();
    let mut mint = Command::new(bin);
    clean(&mut mint);
    let out = mint
        .current_dir(&cwd)
        .args(["mint-token", "--role", "tenant-admin", "--tenant", id])
        .output()
        .unwrap();
    let tenant_token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = client
        .get(format!("{base}/api/v1/tenants/{id}/connectors"))
        .bearer_auth(&tenant_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for var in [
        "MATIH_DATABASE_URL",
        "MATIH_SECRET_STORE",
        "MATIH_SECRET_KEY",
        "MATIH_JWT_SECRET",
        "MATIH_LISTEN",
    ] {
        assert!(help.contains(var), "--help documents {var}");
    }
    drop(_child);
    std::fs::remove_dir_all(&cwd).ok();
}
