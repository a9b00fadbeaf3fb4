use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn texts(m: &Model, now: Duration) -> Vec<String> {
    m.lines(now, 80, 40)
        .into_iter()
        .map(|l| l.text.trim_end().to_string())
        .collect()
}

/// The step lines without their times.
fn steps(m: &Model, now: Duration) -> Vec<String> {
    m.lines(now, 80, 40)
        .into_iter()
        .skip(1)
        .map(|l| match l.text.rsplit_once(' ') {
            Some((left, t)) if t.ends_with('s') && !l.text.contains("=> =>") => {
                left.trim_end().to_string()
            }
            _ => l.text.trim_end().to_string(),
        })
        .collect()
}

fn feed(m: &mut Model, at: u64, texts: &[&str]) {
    for t in texts {
        m.stream(t, None, ms(at));
    }
}

#[test]
fn a_step_runs_then_is_done_with_its_time() {
    let mut m = Model::new();
    m.context_sent(2048, ms(10));
    feed(
        &mut m,
        20,
        &["Step 1/2 : FROM busybox", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    feed(
        &mut m,
        30,
        &[
            "Step 2/2 : RUN echo hi",
            "\n",
            " ---> Running in abcdef012345\n",
        ],
    );
    feed(&mut m, 40, &["hi\n"]);
    let lines = texts(&m, ms(1540));
    assert_eq!(lines[0], "[+] Building 1.5s (1/2)");
    assert!(
        lines[1].starts_with(" => [internal] load build context"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(" 0.0s"), "{lines:?}");
    assert_eq!(lines[2], " => => transferring context: 2.048kB");
    assert!(lines[3].starts_with(" => [1/2] FROM busybox "), "{lines:?}");
    assert!(lines[3].ends_with(" 0.0s"), "{lines:?}");
    // running: its elapsed time, its output under it
    assert!(lines[4].starts_with(" => [2/2] RUN echo hi "), "{lines:?}");
    assert!(lines[4].ends_with(" 1.5s"), "{lines:?}");
    assert_eq!(lines[5], " => => # hi");
    let styles: Vec<Style> = m.lines(ms(1540), 80, 40).iter().map(|l| l.style).collect();
    assert_eq!(
        styles,
        [
            Style::Header,
            Style::Done,
            Style::Log,
            Style::Done,
            Style::Running,
            Style::Log
        ]
    );
    feed(
        &mut m,
        2040,
        &[
            " ---> 0123456789ab\n",
            "Removing intermediate container abcdef012345\n",
            "Successfully built 0123456789ab\n",
            "Successfully tagged x:1\n",
        ],
    );
    m.image_id("sha256:0123456789ab");
    m.finish(ms(2100));
    let lines = texts(&m, ms(5000));
    assert_eq!(lines[0], "[+] Building 2.1s (2/2) FINISHED");
    assert!(lines[4].starts_with(" => [2/2] RUN echo hi "), "{lines:?}");
    assert!(lines[4].ends_with(" 2.0s"), "{lines:?}");
    // the output of a finished step is no longer shown
    assert!(lines[5].starts_with(" => exporting to image"), "{lines:?}");
    assert_eq!(lines[6], " => => writing image sha256:0123456789ab");
    assert_eq!(lines[7], " => => naming to x:1");
    assert_eq!(
        m.summary(),
        ["Built sha256:0123456789ab in 2.1s (2 steps, 0 cached)"]
    );
}

#[test]
fn cached_steps_are_marked() {
    let mut m = Model::new();
    feed(
        &mut m,
        0,
        &["Step 1/2 : FROM busybox", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    feed(
        &mut m,
        5,
        &[
            "Step 2/2 : RUN echo hi",
            "\n",
            " ---> Using cache\n",
            " ---> 0123456789ab\n",
        ],
    );
    m.finish(ms(10));
    let s = steps(&m, ms(10));
    assert_eq!(s[0], " => [1/2] FROM busybox");
    assert_eq!(s[1], " => CACHED [2/2] RUN echo hi");
    assert_eq!(m.summary()[0], "Built an image in 0.0s (2 steps, 1 cached)");
}

#[test]
fn parallel_stages_each_have_their_running_step() {
    let mut m = Model::new();
    // stages a (steps 1-2) and b (steps 3-4) run at once; c (5-6) uses both
    feed(&mut m, 0, &["Step 1/6 : FROM busybox AS a", "\n"]);
    feed(&mut m, 1, &["Step 3/6 : FROM busybox AS b", "\n"]);
    feed(&mut m, 2, &[" ---> 1a2b3c4d5e6f\n", " ---> 1a2b3c4d5e6f\n"]);
    feed(&mut m, 3, &["Step 2/6 : RUN sleep 1", "\n"]);
    feed(&mut m, 3, &[" ---> Running in 222222222222\n"]);
    // a header with another stage's line slipping in before its newline
    feed(
        &mut m,
        4,
        &[
            "Step 4/6 : RUN sleep 2",
            " ---> Running in 111111111111\n",
            "\n",
        ],
    );
    feed(&mut m, 5, &["from b\n"]);
    let s = steps(&m, ms(500));
    assert_eq!(
        s,
        [
            " => [a 1/6] FROM busybox AS a",
            " => [a 2/6] RUN sleep 1",
            " => [b 3/6] FROM busybox AS b",
            " => [b 4/6] RUN sleep 2",
            " => => # from b",
        ]
    );
    let lines = m.lines(ms(500), 80, 40);
    let running: Vec<&Line> = lines.iter().filter(|l| l.style == Style::Running).collect();
    assert_eq!(running.len(), 2, "{lines:?}");
    // a's RUN ends while b's last line came after it: its container names it
    feed(
        &mut m,
        900,
        &["Removing intermediate container 222222222222\n"],
    );
    feed(&mut m, 900, &[" ---> 0123456789ab\n"]);
    feed(&mut m, 1000, &["Step 5/6 : FROM a", "\n"]);
    feed(&mut m, 1100, &["Step 6/6 : COPY --from=b / /", "\n"]);
    let lines = m.lines(ms(1200), 80, 40);
    let running: Vec<String> = lines
        .iter()
        .filter(|l| l.style == Style::Running)
        .map(|l| l.text.clone())
        .collect();
    assert_eq!(running.len(), 2, "{lines:?}");
    assert!(
        running[0].starts_with(" => [b 4/6] RUN sleep 2"),
        "{running:?}"
    );
    assert!(
        running[1].starts_with(" => [6/6] COPY --from=b / /"),
        "{running:?}"
    );
    assert_eq!(texts(&m, ms(1200))[0], "[+] Building 1.2s (4/6)");
}

#[test]
fn only_the_last_lines_of_output_are_shown() {
    let mut m = Model::new();
    feed(
        &mut m,
        0,
        &["Step 1/2 : FROM busybox", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    feed(&mut m, 0, &["Step 2/2 : RUN seq 5", "\n"]);
    feed(&mut m, 0, &["1\n2\n3\n", "4\n5", "\n", "x\r50%\r100%\n"]);
    let s = steps(&m, ms(0));
    assert_eq!(&s[2..], [" => => # 4", " => => # 5", " => => # 100%"]);
}

#[test]
fn pull_progress_is_replaced_in_place() {
    let mut m = Model::new();
    feed(&mut m, 0, &["Step 1/1 : FROM localhost:5000/bb", "\n"]);
    m.progress("", "Pulling from bb", ms(1));
    m.progress("abc", "Downloading [=>  ] 1kB/2kB", ms(1));
    m.progress("abc", "Pull complete", ms(2));
    let s = steps(&m, ms(3));
    assert_eq!(
        &s[1..],
        [" => => # Pulling from bb", " => => # abc: Pull complete"]
    );
}

#[test]
fn a_failed_run_is_marked_and_framed() {
    let mut m = Model::new();
    feed(
        &mut m,
        0,
        &["Step 1/3 : FROM busybox AS a", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    feed(
        &mut m,
        0,
        &["Step 3/3 : FROM busybox", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    feed(
        &mut m,
        10,
        &["Step 2/3 : RUN echo bad; exit 3", "\n", "bad\n"],
    );
    m.fail(
        "The command '/bin/sh -c echo bad; exit 3' returned a non-zero code: 3",
        ms(300),
    );
    let s = steps(&m, ms(900));
    assert_eq!(s[1], " => ERROR [a 2/3] RUN echo bad; exit 3");
    assert_eq!(s[2], " => => # bad");
    assert_eq!(texts(&m, ms(900))[0], "[+] Building 0.3s (2/3)");
    assert_eq!(
        m.failure(),
        [
            "------",
            " > [a 2/3] RUN echo bad; exit 3:",
            "bad",
            "------"
        ]
    );
}

#[test]
fn a_tall_block_drops_finished_steps_first() {
    let mut m = Model::new();
    feed(
        &mut m,
        0,
        &["Step 1/9 : FROM busybox", "\n", " ---> 1a2b3c4d5e6f\n"],
    );
    for n in 2..=8 {
        feed(
            &mut m,
            0,
            &[
                &format!("Step {n}/9 : RUN true"),
                "\n",
                " ---> 0123456789ab\n",
            ],
        );
    }
    feed(&mut m, 0, &["Step 9/9 : RUN sleep 9", "\n", "out\n"]);
    let lines = m.lines(ms(100), 80, 6);
    let texts: Vec<&str> = lines.iter().map(|l| l.text.trim_end()).collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    assert!(texts[0].starts_with("[+] Building"));
    assert!(texts[1].starts_with(" => [7/9] RUN true"), "{texts:?}");
    assert!(texts[3].starts_with(" => [9/9] RUN sleep 9"), "{texts:?}");
    assert_eq!(texts[4], " => => # out");
}

#[test]
fn lines_fit_the_width() {
    let mut m = Model::new();
    let long = format!("Step 1/1 : FROM busybox AS {}", "x".repeat(200));
    feed(&mut m, 0, &[&long, "\n"]);
    for l in m.lines(ms(0), 40, 10) {
        assert!(l.text.chars().count() < 40, "{l:?}");
    }
    let l = &m.lines(ms(0), 40, 10)[1];
    assert!(l.text.ends_with(" 0.0s"), "{l:?}");
}

#[test]
fn the_view_redraws_in_place() {
    let mut out = Vec::new();
    let mut v = View::new(&mut out);
    let line = |t: &str| Line {
        text: t.into(),
        style: Style::Running,
    };
    v.draw(&[line("a"), line("b")]).unwrap();
    v.draw(&[line("c")]).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert_eq!(s, "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[2A\r\x1b[2Kc\n\x1b[J");
}

#[test]
fn output_goes_to_the_step_berthd_names_with_it() {
    let mut m = Model::new();
    let tagged = |m: &mut Model, n: usize, t: &str| m.stream(t, Some(n), ms(1));
    tagged(&mut m, 1, "Step 1/4 : FROM busybox AS a\n");
    tagged(&mut m, 3, "Step 3/4 : FROM busybox AS b\n");
    tagged(&mut m, 2, "Step 2/4 : RUN work a\n");
    tagged(&mut m, 4, "Step 4/4 : RUN work b\n");
    // b's step started last, yet these lines are a's; a line cut in two by b's output too
    tagged(&mut m, 2, "from a\n");
    tagged(&mut m, 2, "half of ");
    tagged(&mut m, 4, "from b\n");
    tagged(&mut m, 2, "a's line\n");
    let s = steps(&m, ms(500));
    assert_eq!(
        s,
        [
            " => [a 1/4] FROM busybox AS a",
            " => [a 2/4] RUN work a",
            " => => # from a",
            " => => # half of a's line",
            " => [b 3/4] FROM busybox AS b",
            " => [b 4/4] RUN work b",
            " => => # from b",
        ]
    );
}
