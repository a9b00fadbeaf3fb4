//! CRI security contexts in the engine's terms: seccomp profiles as `--security-opt`, users
//! as `--user`, capabilities as `--cap-add`/`--cap-drop`.

use k8s_cri::v1 as cri;
use k8s_cri::v1::security_profile::ProfileType;
use tonic::Status;

/// The `seccomp=` security option of a CRI profile, as containerd reads it: no profile (and
/// `Unconfined`) is unconfined, `RuntimeDefault` the engine's default (Docker's), `Localhost`
/// the JSON file it names, read now. An empty string: the engine's default.
pub fn seccomp_opt(profile: Option<&cri::SecurityProfile>) -> Result<String, Status> {
    let localhost = |path: &str| -> Result<String, Status> {
        if !path.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "seccomp profile {path:?} is not an absolute path"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Status::invalid_argument(format!("reading seccomp profile {path:?}: {e}"))
        })?;
        Ok(format!("seccomp={text}"))
    };
    match profile {
        Some(p) => match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(String::new()),
            Ok(ProfileType::Unconfined) => Ok("seccomp=unconfined".to_string()),
            Ok(ProfileType::Localhost) => localhost(&p.localhost_ref),
            Err(_) => Err(Status::invalid_argument(format!(
                "unknown seccomp profile type {}",
                p.profile_type
            ))),
        },
        None => Ok("seccomp=unconfined".to_string()),
    }
}

/// The engine's `User` of a run-as user (id, else name) and group; none: the image's.
pub fn user(
    uid: Option<&cri::Int64Value>,
    gid: Option<&cri::Int64Value>,
    username: &str,
) -> Option<String> {
    let user = match uid {
        Some(u) => u.value.to_string(),
        None if !username.is_empty() => username.to_string(),
        None => return None,
    };
    Some(match gid {
        Some(g) => format!("{user}:{}", g.value),
        None => user,
    })
}

/// A capability name as the engine takes it (`CAP_` optional, `ALL`).
pub fn capability(name: &str) -> String {
    name.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_as_containerd_reads_them() {
        let p = |t: ProfileType, r: &str| cri::SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.to_string(),
        };
        assert_eq!(seccomp_opt(None).unwrap(), "seccomp=unconfined");
        assert_eq!(
            seccomp_opt(Some(&p(ProfileType::RuntimeDefault, ""))).unwrap(),
            ""
        );
        assert_eq!(
            seccomp_opt(Some(&p(ProfileType::Unconfined, ""))).unwrap(),
            "seccomp=unconfined"
        );
        let file = std::env::temp_dir().join(format!("berth-cri-sc-{}.json", std::process::id()));
        std::fs::write(&file, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let path = file.display().to_string();
        assert_eq!(
            seccomp_opt(Some(&p(ProfileType::Localhost, &path))).unwrap(),
            r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#
        );
        assert!(seccomp_opt(Some(&p(ProfileType::Localhost, "rel.json"))).is_err());
        assert!(seccomp_opt(Some(&p(ProfileType::Localhost, "/nonexistent/x.json"))).is_err());
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn users_are_ids_then_names() {
        let v = |n| cri::Int64Value { value: n };
        assert_eq!(
            user(Some(&v(1000)), Some(&v(10)), "x").as_deref(),
            Some("1000:10")
        );
        assert_eq!(user(None, None, "nobody").as_deref(), Some("nobody"));
        assert_eq!(user(None, None, ""), None);
        assert_eq!(user(Some(&v(0)), None, "").as_deref(), Some("0"));
    }
}
