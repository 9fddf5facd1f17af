//! The status page (`GET /notifications/` on the debug listener) in a real browser: Debian's
//! `chromium`, headless, driven through `chromedriver` (WebDriver), loads it from a running
//! `registry` whose listener wants a token. The test reads each endpoint's row from the rendered
//! DOM, presses ping on both rows and sees each row change (the answer of an accepting receiver,
//! the error of a refusing address), and leaves a screenshot in its output folder.

mod support;

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use support::{free_port, Http, Receiver};

const TOKEN: &str = "page-t0ken";

/// A WebDriver session of headless Chromium, ended (and the driver killed) when dropped.
struct Browser {
    driver: tokio::process::Child,
    http: Http,
    session: String,
}

impl Browser {
    async fn start(dir: &std::path::Path) -> Option<Browser> {
        let chromium = support::require_tool("chromium")?;
        let chromedriver = support::require_tool("chromedriver")?;
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let driver = support::process::logged(&chromedriver, &log)
            .arg(format!("--port={port}"))
            .spawn()
            .expect("spawn chromedriver");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut browser = Browser {
            driver,
            http: Http::new(addr),
            session: String::new(),
        };
        support::process::wait_listening(&mut browser.driver, addr, "chromedriver").await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--window-size=1500,700"],
            },
        }}});
        let created = browser.post("/session", caps).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(browser)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .send(
                "POST",
                path,
                &[("content-type", "application/json")],
                Bytes::from(body.to_string()),
            )
            .await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 200, "{path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.post(&format!("/session/{}/url", self.session), json!({ "url": url }))
            .await;
    }

    /// Runs `script` in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.post(
            &format!("/session/{}/execute/sync", self.session),
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// The text of the row of endpoint `name` (`None` until it is rendered).
    async fn row(&self, name: &str) -> Option<String> {
        let script = format!(
            "const r = document.querySelector('tr[data-endpoint=\"{name}\"]'); return r ? r.innerText : null;"
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// Waits until the row of `name` satisfies `want`; returns its text.
    async fn row_until(&self, name: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + support::HANG_GUARD;
        loop {
            let row = self.row(name).await;
            if let Some(text) = &row {
                if want(text) {
                    return text.clone();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element `css` selects.
    async fn click(&self, css: &str) {
        let found = self
            .post(
                &format!("/session/{}/element", self.session),
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post(
            &format!("/session/{}/element/{id}/click", self.session),
            json!({}),
        )
        .await;
    }

    async fn screenshot(&self, to: &std::path::Path) {
        let r = self
            .http
            .get(&format!("/session/{}/screenshot", self.session))
            .await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_each_endpoint_and_ping_changes_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let Some(browser) = Browser::start(dir.path()).await else {
        return;
    };
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let refused = Receiver::start(support::receiver::always(200)).await.stop();
    let (port, debug_port) = (free_port(), free_port());
    let endpoints = format!(
        "    - name: up\n      url: {url}\n      timeout: 2s\n    - name: refusing\n      url: http://{refused}/events\n      timeout: 2s\n",
        url = receiver.url(),
    );
    let config = support::config_with_debug(port, &format!("127.0.0.1:{debug_port}"), TOKEN, &endpoints);
    let registry = support::start_with_debug(dir.path(), &config, port, debug_port).await;
    let debug = registry.debug.addr;
    registry.client.push_blob("page/app", b"one event").await;

    // The page holds no data: it loads without the token, its calls carry it.
    let page = Http::new(debug).get("/notifications/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no outside assets"
    );

    browser
        .go(&format!(
            "http://127.0.0.1:{debug_port}/notifications/#token={TOKEN}"
        ))
        .await;
    let up = browser
        .row_until("up", "the up row with its delivery", |t| {
            t.contains("delivered 200")
        })
        .await;
    assert!(
        up.contains(&receiver.url()) && up.contains("ok") && up.contains("closed"),
        "{up}"
    );
    let refusing = browser
        .row_until("refusing", "the refusing row", |t| t.contains("failing"))
        .await;
    assert!(
        refusing.contains(&format!("http://{refused}/events")),
        "{refusing}"
    );
    assert!(refusing.contains("open"), "{refusing}");
    assert!(!browser
        .eval("return document.documentElement.outerHTML")
        .await
        .as_str()
        .unwrap()
        .contains(TOKEN));

    // Ping on each row: the answer of the receiver, the error of the refusing address.
    browser.click("tr[data-endpoint=\"up\"] button.ping").await;
    browser
        .row_until("up", "the ping's answer in the up row", |t| {
            t.contains("ping 200")
        })
        .await;
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|r| r.json_events()[0]["action"] == "ping")
            .count(),
        1
    );
    browser.click("tr[data-endpoint=\"refusing\"] button.ping").await;
    let refusing = browser
        .row_until("refusing", "the ping's error in the refusing row", |t| {
            t.lines()
                .any(|l| l.starts_with("ping ") && !l.contains("ping 200"))
        })
        .await;
    let message = browser
        .eval("return document.getElementById('message').innerText")
        .await;
    assert!(
        message.as_str().unwrap().starts_with("refusing: ping failed"),
        "{message} / {refusing}"
    );

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page");
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&shots.join("status_page.png")).await;
    eprintln!("screenshot: {}", shots.join("status_page.png").display());
    let _ = browser
        .http
        .send(
            "DELETE",
            &format!("/session/{}", browser.session),
            &[],
            Bytes::new(),
        )
        .await;
}
