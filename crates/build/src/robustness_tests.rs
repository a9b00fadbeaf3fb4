//! Feeds pseudo-random and mangled text through every entry point that
//! takes untrusted input, checking that none panics (and that the parser
//! still works on the unmangled corpus).

use crate::shell_words::{env_from_strings, variables_used, Lex};

/// Knuth's MMIX LCG: deterministic, so a failure is reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const CORPUS: &str = "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine:3.19\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nRUN --mount=type=cache,target=/root/.cache,sharing=locked \\\n    --network=none echo \"hi $HOME\" 'x' && \\\n# comment\n    ls\nRUN <<-EOF bash\n\techo ${A:-b} ${C#*/} ${D//x/y}\nEOF\nCOPY --from=build --chown=1:1 --chmod=755 [\"a\", \"b\"]\nCOPY <<A <<'B' /dst/\nx\nA\ny\nB\nADD --checksum=sha256:0 --keep-git-dir https://x/y.git /src\nENV A=1 B=\"2 3\" C=a\\ b\nLABEL k=v\nEXPOSE 80/tcp $P\nHEALTHCHECK --interval=5s --retries=3 CMD [\"curl\", \"-f\", \"x\"]\nONBUILD RUN make\nSHELL [\"/bin/sh\", \"-c\"]\nUSER app\nWORKDIR /w\nVOLUME [\"/v\"]\nSTOPSIGNAL SIGTERM\nENTRYPOINT [\"/e\"]\nCMD x\n";

const ALPHABET: &[char] = &[
    '\\', '`', '$', '{', '}', '"', '\'', '<', '-', '#', '=', '\n', '\r', '\t', ' ', '[', ']', ',',
    ':', '?', '+', '%', '/', '*', '!', 'a', 'R', 'U', 'N', 'E', 'O', 'F', '0', '9', 'é', '한',
    '\u{feff}', '\u{85}', '\u{a0}', '\0',
];

fn mangle(rng: &mut Lcg, base: &str) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    let edits = 1 + rng.below(12);
    for _ in 0..edits {
        let pos = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if pos < chars.len() => {
                chars.remove(pos);
            }
            1 => chars.insert(pos, ALPHABET[rng.below(ALPHABET.len())]),
            2 => {
                // Duplicate a slice somewhere else.
                let a = rng.below(chars.len() + 1);
                let b = (a + rng.below(40)).min(chars.len());
                let piece: Vec<char> = chars[a..b].to_vec();
                let at = rng.below(chars.len() + 1);
                chars.splice(at..at, piece);
            }
            _ => chars.truncate(pos),
        }
    }
    chars.into_iter().collect()
}

fn random_text(rng: &mut Lcg) -> String {
    let len = rng.below(200);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

fn exercise(text: &str) {
    // Whole pipeline, then expansion of every instruction that parsed.
    if let Ok(df) = crate::parse(text) {
        let lex = Lex::new(df.escape);
        let env = env_from_strings(["A=1", "HOME=/root", "P=80 443", "BASE=x"]);
        for stage in &df.stages {
            for c in &stage.commands {
                let _ = c.instruction.expand(&lex, &env);
                let _ = c.instruction.variables_used(df.escape);
            }
        }
    }
    for line in text.lines().take(20) {
        for escape in ['\\', '`'] {
            let lex = Lex::new(escape);
            let _ = lex.process(line, &env_from_strings(["A=1"]));
            let _ = variables_used(line, escape);
        }
        let _ =
            crate::ignore::Matcher::new([line]).map(|m| (m.matches(line), m.can_skip_dir(line)));
        let _ = crate::glob::matches(line, line);
        let _ = crate::platform::Platform::parse(line);
        let _ = crate::instructions::RunMount::parse(line);
    }
}

#[test]
fn corpus_parses() {
    let df = crate::parse(CORPUS).unwrap();
    assert_eq!(df.stages.len(), 1);
    assert_eq!(df.stages[0].commands.len(), 17);
    exercise(CORPUS);
}

#[test]
fn mangled_corpus_never_panics() {
    let mut rng = Lcg(0x5eed);
    for _ in 0..400 {
        let text = mangle(&mut rng, CORPUS);
        exercise(&text);
    }
}

#[test]
fn random_text_never_panics() {
    let mut rng = Lcg(42);
    for _ in 0..400 {
        let text = random_text(&mut rng);
        exercise(&text);
    }
}

#[test]
fn pathological_inputs_never_panic() {
    let cases = [
        "\\".repeat(10_000),
        "${".repeat(5_000),
        format!("FROM x\nRUN {}", "<<A ".repeat(2_000)),
        format!("FROM x\nONBUILD {}RUN x", "ONBUILD ".repeat(1_000)),
        format!("FROM x\nENV {}", "a=\"".repeat(3_000)),
        "[".repeat(10_000),
        format!("FROM x\nRUN {}", "[".repeat(10_000)),
        "\u{feff}".to_string(),
        "# escape=`\n`".to_string(),
        "FROM x\nCOPY <<\"EOF /a\nEOF\n".to_string(),
    ];
    for c in &cases {
        exercise(c);
    }
}
