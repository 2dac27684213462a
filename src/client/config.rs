//! Where the client finds its server and token: what the command line gave (a flag, else
//! its environment variable), then the user config file that `fazt login` writes
//! (`key = value` lines, mode 0600).

use super::url::ServerUrl;
use super::ClientError;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What the config file holds; either value may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedSettings {
    pub server: Option<String>,
    pub token: Option<String>,
}

/// Environment lookup for the config file's location, injectable for tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How the user can give each value, for the error when one is missing; the command line
/// knows its flags and variables (e.g. "pass --server URL or set ...").
#[derive(Clone, Debug)]
pub struct Hints {
    pub server: String,
    pub token: String,
}

/// The server and token a command talks to, after precedence is applied.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerUrl,
    pub token: String,
}

/// `$XDG_CONFIG_HOME/fazt/config`, else `$HOME/.config/fazt/config`.
pub fn config_path(env: Env) -> Result<PathBuf, ClientError> {
    if let Some(dir) = env("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(PathBuf::from(dir).join("fazt").join("config"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home)
            .join(".config")
            .join("fazt")
            .join("config")),
        None => Err(ClientError::Usage(
            "cannot locate the config file: neither XDG_CONFIG_HOME nor HOME is set".into(),
        )),
    }
}

/// Reads the config file; a missing file is an empty configuration.
pub fn load(path: &Path) -> Result<SavedSettings, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedSettings::default()),
        Err(e) => return Err(ClientError::Usage(format!("{}: {e}", path.display()))),
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.mode() & 0o077 != 0 {
            eprintln!(
                "fazt: warning: {} holds an API token but is readable by others (chmod 600 it)",
                path.display()
            );
        }
    }
    parse(&text).map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))
}

fn parse(text: &str) -> Result<SavedSettings, String> {
    let mut saved = SavedSettings::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected 'key = value'", n + 1));
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim() {
            "server" => saved.server = value,
            "token" => saved.token = value,
            // Unknown keys are ignored so an older fazt can read a newer file.
            _ => {}
        }
    }
    Ok(saved)
}

/// Writes the config file atomically: a new file created with mode 0600 (never wider,
/// not even for an instant), then renamed over the old one. The directory is made 0700.
pub fn save(path: &Path, saved: &SavedSettings) -> Result<(), ClientError> {
    let fail =
        |what: &Path, e: std::io::Error| ClientError::Failed(format!("{}: {e}", what.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(dir, e))?;
    let mut text = String::from("# fazt client settings, written by `fazt login`\n");
    for (key, value) in [("server", &saved.server), ("token", &saved.token)] {
        if let Some(value) = value {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(path, e));
    }
    Ok(())
}

/// `fazt login`: validates a server and/or token, keeping the saved value of whichever is
/// not given, runs `check` on the result (the server and token must work) and only then
/// saves it into the config file at `path`. Returns what it now holds.
pub fn login(
    server: Option<String>,
    token: Option<String>,
    path: &Path,
    check: &dyn Fn(&SavedSettings) -> Result<(), ClientError>,
) -> Result<SavedSettings, ClientError> {
    if server.is_none() && token.is_none() {
        return Err(ClientError::Usage(
            "usage: fazt login --server URL --token T (either may be left out to keep the saved one)"
                .into(),
        ));
    }
    let server = server
        .map(|text| ServerUrl::parse(&text).map(|url| url.to_string()))
        .transpose()
        .map_err(ClientError::Usage)?;
    if let Some(token) = &token {
        validate_token(token)?;
    }
    let old = load(path)?;
    let saved = SavedSettings {
        server: server.or(old.server),
        token: token.or(old.token),
    };
    check(&saved)?;
    save(path, &saved)?;
    Ok(saved)
}

/// Applies precedence (the command line's value, a flag or its variable, then the file) to
/// the server and the token, each on its own. `file` is consulted only when something is
/// still missing.
pub fn resolve(
    given: SavedSettings,
    file: &dyn Fn() -> Result<SavedSettings, ClientError>,
    hints: &Hints,
) -> Result<Settings, ClientError> {
    let SavedSettings {
        mut server,
        mut token,
    } = given;
    if server.is_none() || token.is_none() {
        let saved = file()?;
        server = server.or(saved.server);
        token = token.or(saved.token);
    }
    let server = server.ok_or_else(|| {
        ClientError::Usage(format!(
            "no server: {}, or run 'fazt login --server URL --token T'",
            hints.server
        ))
    })?;
    let token = token.ok_or_else(|| {
        ClientError::Usage(format!(
            "no API token: {}, or run 'fazt login --server URL --token T' \
             (create a token on the server with 'fazt key create NAME')",
            hints.token
        ))
    })?;
    validate_token(&token)?;
    Ok(Settings {
        server: ServerUrl::parse(&server).map_err(ClientError::Usage)?,
        token,
    })
}

/// A token goes into a header line, so it must be printable ASCII without spaces.
pub fn validate_token(token: &str) -> Result<(), ClientError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Usage(
            "the API token must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fazt-client-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn path_prefers_xdg_config_home_then_home() {
        let env = env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(config_path(&env).unwrap(), PathBuf::from("/x/fazt/config"));
        let env = env_of(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")]);
        assert_eq!(
            config_path(&env).unwrap(),
            PathBuf::from("/h/.config/fazt/config")
        );
        let env = env_of(&[]);
        assert!(matches!(config_path(&env), Err(ClientError::Usage(_))));
    }

    #[test]
    fn save_creates_the_file_0600_and_load_reads_it_back() {
        let dir = temp_dir("save");
        let path = dir.join("fazt").join("config");
        let saved = SavedSettings {
            server: Some("http://127.0.0.1:4698".into()),
            token: Some("fzt_secret".into()),
        };
        save(&path, &saved).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(load(&path).unwrap(), saved);

        // Overwriting a file someone made world-readable leaves a 0600 file behind.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        save(
            &path,
            &SavedSettings {
                token: Some("t2".into()),
                ..saved
            },
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap().token.as_deref(), Some("t2"));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file left beside the config");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_treats_a_missing_file_as_empty_and_rejects_garbage() {
        let dir = temp_dir("load");
        assert_eq!(load(&dir.join("none")).unwrap(), SavedSettings::default());
        let path = dir.join("config");
        std::fs::write(&path, "# c\n\nserver=http://a\nfuture = x\n").unwrap();
        let saved = load(&path).unwrap();
        assert_eq!(saved.server.as_deref(), Some("http://a"));
        assert_eq!(saved.token, None);
        std::fs::write(&path, "server http://a\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.message().contains("line 1"), "{}", err.message());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn hints() -> Hints {
        Hints {
            server: "pass --server URL".into(),
            token: "pass --token T".into(),
        }
    }

    fn given(server: Option<&str>, token: Option<&str>) -> SavedSettings {
        SavedSettings {
            server: server.map(str::to_string),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn the_command_line_beats_the_file() {
        let file = || {
            Ok(SavedSettings {
                server: Some("http://file:1".into()),
                token: Some("file-token".into()),
            })
        };
        let s = resolve(
            given(Some("http://flag:3"), Some("flag-token")),
            &file,
            &hints(),
        )
        .unwrap();
        assert_eq!(
            (s.server.host.as_str(), s.token.as_str()),
            ("flag", "flag-token")
        );
        let s = resolve(given(None, None), &file, &hints()).unwrap();
        assert_eq!(
            (s.server.host.as_str(), s.token.as_str()),
            ("file", "file-token")
        );
        // Each value is resolved on its own.
        let s = resolve(given(None, Some("env-token")), &file, &hints()).unwrap();
        assert_eq!(
            (s.server.host.as_str(), s.token.as_str()),
            ("file", "env-token")
        );
    }

    #[test]
    fn missing_or_bad_values_are_usage_errors() {
        let empty = || Ok(SavedSettings::default());
        let err = resolve(given(None, Some("t")), &empty, &hints()).unwrap_err();
        assert!(
            err.message().contains("no server: pass --server URL"),
            "{}",
            err.message()
        );
        let err = resolve(given(Some("http://a"), None), &empty, &hints()).unwrap_err();
        assert!(
            err.message().contains("no API token: pass --token T"),
            "{}",
            err.message()
        );
        let err = resolve(given(Some("a:1"), Some("t")), &empty, &hints()).unwrap_err();
        assert!(err.message().contains("http://"), "{}", err.message());
        let err = resolve(given(Some("http://a"), Some("t t")), &empty, &hints()).unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)));
        // The file is not read when the command line already says everything.
        let broken = || Err(ClientError::Usage("unreadable".into()));
        assert!(resolve(given(Some("http://a"), Some("t")), &broken, &hints()).is_ok());
    }
}
