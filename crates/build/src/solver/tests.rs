//! The solver against a backend that keeps its images in memory.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::*;

/// Images are their configs; ids are counters.
#[derive(Default)]
struct Fake {
    next: Mutex<u64>,
    cache: Mutex<Vec<(String, Image)>>,
    runs: Mutex<Vec<RunRequest>>,
    fail_with: Option<i64>,
    /// The image every `FROM` gets (else `busybox` only).
    base: Option<Image>,
    /// `set_config` marks the last history entry empty, as the engine's does.
    mark_empty: bool,
}

impl Fake {
    fn make(&self, config: &Value) -> Image {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        Image {
            id: format!("sha256:{:064x}", *n),
            handle: n.to_string(),
            config: config.clone(),
        }
    }
}

impl Backend for Fake {
    fn image(&self, name: &str, _pull: bool, _out: &Output) -> Result<Image, BackendError> {
        if let Some(base) = &self.base {
            return Ok(base.clone());
        }
        if name != "busybox" {
            return Err(BackendError::new(format!("pull access denied for {name}")));
        }
        let config = json!({"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}, "history": []});
        Ok(Image {
            id: format!("sha256:{:064x}", u64::MAX),
            handle: "busybox".into(),
            config,
        })
    }
    fn run(&self, _p: &Image, req: &RunRequest, _out: &Output) -> Result<Image, BackendError> {
        self.runs.lock().unwrap().push(req.clone());
        if let Some(code) = self.fail_with {
            return Err(BackendError {
                message: "failed".into(),
                code: Some(code),
            });
        }
        Ok(self.make(&req.config))
    }
    fn copy(&self, _p: &Image, req: &CopyRequest) -> Result<Image, BackendError> {
        Ok(self.make(&req.config))
    }
    fn mkdir(&self, _p: &Image, _dir: &str, config: &Value) -> Result<Image, BackendError> {
        Ok(self.make(config))
    }
    fn set_config(&self, _p: &Image, config: &Value) -> Result<Image, BackendError> {
        let mut config = config.clone();
        if self.mark_empty {
            config::mark_last_empty(&mut config);
        }
        Ok(self.make(&config))
    }
    fn cache_get(&self, key: &str) -> Option<Image> {
        let cache = self.cache.lock().unwrap();
        cache.iter().find(|(k, _)| k == key).map(|(_, i)| i.clone())
    }
    fn cache_put(&self, key: &str, image: &Image) {
        self.cache.lock().unwrap().push((key.into(), image.clone()));
    }
}

fn build(fake: &Fake, text: &str, opts: &BuildOptions) -> (Result<Image, SolveError>, String) {
    let df = crate::parse(text).unwrap();
    let lines = std::sync::Arc::new(Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&lines);
    let out = Output::new(move |m| {
        if let output::Message::Stream { text: s, .. } = m {
            sink.lock().unwrap().push_str(&s);
        }
    });
    let r = solve(&df, opts, fake, &out);
    let text = lines.lock().unwrap().clone();
    (r, text)
}

#[test]
fn a_second_build_is_all_cache_hits_and_gives_the_same_image() {
    let fake = Fake::default();
    let text = "FROM busybox\nENV A=1\nRUN echo $A\nCMD [\"x\"]\n";
    let (first, out) = build(&fake, text, &BuildOptions::default());
    let first = first.unwrap();
    assert!(out.starts_with("Step 1/4 : FROM busybox\n ---> "), "{out}");
    assert!(out.contains("Step 3/4 : RUN echo $A\n"), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    let (again, out) = build(&fake, text, &BuildOptions::default());
    assert_eq!(again.unwrap().id, first.id);
    assert_eq!(out.matches(" ---> Using cache\n").count(), 3, "{out}");
    assert_eq!(fake.runs.lock().unwrap().len(), 1, "the RUN ran once");
    // --no-cache runs everything again.
    let opts = BuildOptions {
        no_cache: true,
        ..BuildOptions::default()
    };
    let (third, _) = build(&fake, text, &opts);
    assert_ne!(third.unwrap().id, first.id);
    assert_eq!(fake.runs.lock().unwrap().len(), 2);
    // A changed instruction misses from there on.
    let (_, out) = build(
        &fake,
        &text.replace("CMD [\"x\"]", "CMD [\"y\"]"),
        &BuildOptions::default(),
    );
    assert_eq!(out.matches("Using cache").count(), 2, "{out}");
}

#[test]
fn run_sees_args_and_env_and_the_history_shows_the_args() {
    let fake = Fake::default();
    let mut opts = BuildOptions::default();
    opts.build_args.insert("V".into(), Some("given".into()));
    opts.build_args.insert("UNUSED".into(), Some("x".into()));
    opts.build_args
        .insert("http_proxy".into(), Some("http://p".into()));
    let text = "FROM busybox\nARG V=default\nARG W=w\nENV W=fromenv\nRUN true\n";
    let (r, out) = build(&fake, text, &opts);
    let image = r.unwrap();
    let runs = fake.runs.lock().unwrap();
    let env = &runs[0].env;
    assert!(env.contains(&"V=given".to_string()), "{env:?}");
    assert!(env.contains(&"W=fromenv".to_string()), "{env:?}");
    assert!(
        !env.contains(&"W=w".to_string()),
        "ENV wins over ARG: {env:?}"
    );
    assert!(env.contains(&"http_proxy=http://p".to_string()), "{env:?}");
    let history = image.config["history"].as_array().unwrap();
    let last = history.last().unwrap()["created_by"].as_str().unwrap();
    assert_eq!(last, "|1 V=given /bin/sh -c true");
    assert!(
        out.contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{out}"
    );
    // The args are not in the image's env.
    assert_eq!(
        super::config::strings(&image.config, "Env"),
        ["PATH=/bin", "W=fromenv"]
    );
}

#[test]
fn metadata_instructions_set_the_config_as_docker_does() {
    let fake = Fake::default();
    let text = "FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\nFROM busybox AS two\nENTRYPOINT e2\nWORKDIR app\nWORKDIR sub\nEXPOSE 80 53/udp\nLABEL a=b \"c d\"=e\nUSER 1:2\nVOLUME /v\nSTOPSIGNAL SIGINT\nSHELL [\"/bin/ash\", \"-c\"]\nHEALTHCHECK --interval=5s CMD true\n";
    let (r, _) = build(&fake, text, &BuildOptions::default());
    let c = r.unwrap().config["config"].clone();
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "e2"]));
    assert_eq!(c["Cmd"], Value::Null, "ENTRYPOINT resets an inherited CMD");
    assert_eq!(c["WorkingDir"], json!("/app/sub"));
    assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
    assert_eq!(c["User"], json!("1:2"));
    assert_eq!(c["Volumes"], json!({"/v": {}}));
    assert_eq!(c["StopSignal"], json!("SIGINT"));
    assert_eq!(c["Shell"], json!(["/bin/ash", "-c"]));
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64})
    );
    // The first stage was not needed.
    let (r, _) = build(
        &fake,
        "FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n",
        &BuildOptions::default(),
    );
    let c = r.unwrap().config["config"].clone();
    assert_eq!(
        (c["Cmd"].clone(), c["Entrypoint"].clone()),
        (json!(["a"]), json!(["e"]))
    );
}

#[test]
fn a_failing_run_is_reported_in_the_classic_builders_words() {
    let fake = Fake {
        fail_with: Some(3),
        ..Fake::default()
    };
    let (r, _) = build(
        &fake,
        "FROM busybox\nRUN exit 3\n",
        &BuildOptions::default(),
    );
    assert_eq!(
        r.unwrap_err().to_string(),
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    let (r, _) = build(&fake, "FROM nope\n", &BuildOptions::default());
    assert_eq!(r.unwrap_err().to_string(), "pull access denied for nope");
}

#[test]
fn stages_are_built_once_each_and_copy_from_uses_the_cache_of_the_same_stage() {
    let fake = Fake::default();
    let text = "FROM busybox AS a\nRUN a\nFROM busybox\nCOPY --from=a /x /y\nCOPY --from=a /x /z\n";
    let (r, out) = build(&fake, text, &BuildOptions::default());
    r.unwrap();
    assert!(out.contains("Step 5/5 : COPY --from=a /x /z"), "{out}");
    assert_eq!(fake.runs.lock().unwrap().len(), 1);
}

/// A backend whose RUNs wait until `n` of them run at once (or a deadline passes).
struct Barrier {
    inner: Fake,
    running: Mutex<usize>,
    peak: Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Backend for Barrier {
    fn image(&self, name: &str, pull: bool, out: &Output) -> Result<Image, BackendError> {
        self.inner.image(name, pull, out)
    }
    fn run(&self, p: &Image, req: &RunRequest, out: &Output) -> Result<Image, BackendError> {
        {
            let mut r = self.running.lock().unwrap();
            *r += 1;
            let mut peak = self.peak.lock().unwrap();
            *peak = (*peak).max(*r);
            drop(peak);
            self.cv.notify_all();
            // Until two have been running at once (a count that never goes down).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while *self.peak.lock().unwrap() < 2 && std::time::Instant::now() < deadline {
                r = self
                    .cv
                    .wait_timeout(r, std::time::Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
        }
        // Output while both run: each line must name its own step.
        out.stream(&format!("output of {}\n", req.argv.join(" ")));
        let image = self.inner.run(p, req, out);
        *self.running.lock().unwrap() -= 1;
        image
    }
    fn copy(&self, p: &Image, req: &CopyRequest) -> Result<Image, BackendError> {
        self.inner.copy(p, req)
    }
    fn mkdir(&self, p: &Image, dir: &str, config: &Value) -> Result<Image, BackendError> {
        self.inner.mkdir(p, dir, config)
    }
    fn set_config(&self, p: &Image, config: &Value) -> Result<Image, BackendError> {
        self.inner.set_config(p, config)
    }
    fn cache_get(&self, _key: &str) -> Option<Image> {
        None
    }
    fn cache_put(&self, _key: &str, _image: &Image) {}
}

#[test]
fn independent_stages_run_at_the_same_time_with_the_plans_step_numbers() {
    let b = Barrier {
        inner: Fake::default(),
        running: Mutex::new(0),
        peak: Mutex::new(0),
        cv: std::sync::Condvar::new(),
    };
    let text = "FROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM busybox\nCOPY --from=a /x /x\nCOPY --from=b /y /y\n";
    let df = crate::parse(text).unwrap();
    let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&lines);
    let out = Output::new(move |m| {
        if let output::Message::Stream { text, step } = m {
            sink.lock().unwrap().push((text, step));
        }
    });
    let image = solve(&df, &BuildOptions::default(), &b, &out).unwrap();
    assert_eq!(*b.peak.lock().unwrap(), 2, "the two RUNs overlapped");
    let tagged = lines.lock().unwrap().clone();
    for (text, step) in [
        ("output of /bin/sh -c a\n", 2),
        ("output of /bin/sh -c b\n", 4),
    ] {
        assert!(
            tagged.contains(&(text.to_string(), Some(step))),
            "{text:?} of step {step} in {tagged:?}"
        );
    }
    let lines: String = tagged.into_iter().map(|(t, _)| t).collect();
    for step in [
        "Step 2/7 : RUN a",
        "Step 4/7 : RUN b",
        "Step 7/7 : COPY --from=b /y /y",
    ] {
        assert!(lines.contains(step), "{step:?} in {lines}");
    }
    assert_eq!(image.config["history"].as_array().unwrap().len(), 2);
}

#[test]
fn a_failing_stage_stops_the_build_and_its_error_is_the_one_reported() {
    let fake = Fake {
        fail_with: Some(7),
        ..Fake::default()
    };
    let text = "FROM busybox AS a\nRUN exit 7\nFROM busybox AS b\nENV X=1\nFROM busybox\nCOPY --from=a /x /x\nCOPY --from=b /y /y\n";
    let (r, out) = build(&fake, text, &BuildOptions::default());
    assert_eq!(
        r.unwrap_err().to_string(),
        "The command '/bin/sh -c exit 7' returned a non-zero code: 7"
    );
    assert!(!out.contains("COPY --from=a"), "{out}");
}

#[test]
fn a_base_of_another_platform_is_refused() {
    let arm = Fake {
        base: Some(Image {
            id: format!("sha256:{:064x}", 7),
            handle: "arm".into(),
            config: json!({"os": "linux", "architecture": "arm64", "config": {}}),
        }),
        ..Fake::default()
    };
    let df = crate::parse("FROM --platform=linux/amd64 busybox\n").unwrap();
    let err = solve(&df, &BuildOptions::default(), &arm, &Output::discard()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image with reference busybox was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64"
    );
    let df = crate::parse("ARG P=linux/arm64\nFROM --platform=$P busybox\n").unwrap();
    solve(&df, &BuildOptions::default(), &arm, &Output::discard()).unwrap();
    let df = crate::parse("FROM busybox\n").unwrap();
    solve(&df, &BuildOptions::default(), &arm, &Output::discard()).unwrap();
}

#[test]
fn a_foreign_base_config_of_any_shape_never_panics_the_build() {
    // A registry's image config is untrusted: a non-object, or history entries that are not
    // objects, once made the builder write into them (a panic aborts berthd).
    let text = "FROM busybox\nMAINTAINER me\nENV A=1\nLABEL l=v\nEXPOSE 80\nRUN true\nWORKDIR /w\nHEALTHCHECK CMD true\nONBUILD RUN x\nCMD [\"c\"]\n";
    for base in [
        json!(["not", "an", "object"]),
        json!("text"),
        json!({"history": ["x", 3], "config": [1, 2], "rootfs": 7}),
        json!({"config": {"OnBuild": "RUN y", "Healthcheck": 1, "Env": [1, "A"]}}),
    ] {
        let odd = Fake {
            base: Some(Image {
                id: format!("sha256:{:064x}", 9),
                handle: "odd".into(),
                config: base.clone(),
            }),
            mark_empty: true,
            ..Fake::default()
        };
        let df = crate::parse(text).unwrap();
        let image = solve(&df, &BuildOptions::default(), &odd, &Output::discard())
            .unwrap_or_else(|e| panic!("{base}: {e}"));
        assert_eq!(image.config["author"], json!("me"), "{base}");
    }
}
