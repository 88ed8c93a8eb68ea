//! Hostile names and paths, given to netrt-hook the way a runtime gives
//! them (state on stdin, a bundle on disk) and to the netrt wrapper:
//! container ids that try path traversal, over-long and non-UTF-8 ids, a
//! bundle that is a symbolic link, a config.json that is a link, a FIFO,
//! huge or not JSON. Each is refused with a clear message, in bounded
//! time, nothing is written outside /run/netrt and nothing is created.
//! (Hostile interface, bridge and parent names: the bad-input corpus.)

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netrt_integration::*;

/// Runs `program args` with `stdin`, killed after 10 s: (success, stderr).
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut child: Child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?} hung", program.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn state(id: &str, pid: u32, bundle: &Path) -> Vec<u8> {
    serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": pid, "bundle": bundle})
        .to_string()
        .into_bytes()
}

/// Every file under /run/netrt, for "nothing written there either".
fn run_netrt_files() -> String {
    sh("find /run/netrt -mindepth 1 2>/dev/null | sort; true")
}

#[test]
fn hostile_container_ids_are_refused_and_write_nothing() {
    let lab = Lab::bridged("hid");
    let before = snapshot(&[&lab.container_ns]);
    let files_before = run_netrt_files();
    let annotations = [("net.egress", "4mbit")];
    let bundle = Bundle::create("nrt-hostile", &BundleSpec::new(Some(&lab.netns_path()), &annotations));
    let mut holder = process_in_netns(&lab.container_ns);
    let target = std::env::temp_dir().join("netrt-hostile-target");
    let _ = fs::remove_dir_all(&target);
    fs::create_dir_all(&target).unwrap();
    let traversal = format!("../../../..{}/escaped", target.display());
    let long = "a".repeat(201);
    for id in [traversal.as_str(), "a/b", "..", ".", "", long.as_str(), "id\nnewline", "ümlaut", "id with space"] {
        for stage in ["createRuntime", "poststop"] {
            let (ok, stderr) = run(&hook_binary(), &[stage], &state(id, holder.id(), &bundle.dir));
            assert!(!ok, "{stage} with id {id:?} is refused");
            assert!(stderr.contains("container id") || stderr.contains("no container id"), "{stage} {id:?}: {stderr}");
        }
        for args in [vec!["apply-deferred", id], vec!["status", id]] {
            if id.is_empty() {
                continue;
            }
            let (ok, stderr) = run(&hook_binary(), &args, b"");
            assert!(!ok && stderr.contains("container id"), "{args:?}: {stderr}");
        }
    }
    // Not UTF-8 at all.
    let mut raw = b"{\"ociVersion\":\"1.0.2\",\"id\":\"bad".to_vec();
    raw.extend([0xff, 0xfe]);
    raw.extend(
        format!("\",\"status\":\"creating\",\"pid\":{},\"bundle\":\"{}\"}}", holder.id(), bundle.dir.display())
            .as_bytes(),
    );
    let (ok, stderr) = run(&hook_binary(), &["createRuntime"], &raw);
    assert!(!ok && stderr.contains("OCI state"), "non-UTF-8 state: {stderr}");

    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "nothing was written through a traversal");
    assert_eq!(run_netrt_files(), files_before, "nothing new under /run/netrt");
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "nothing created");
    let _ = fs::remove_dir_all(&target);
}

#[test]
fn hostile_bundles_are_refused_in_bounded_time_and_create_nothing() {
    let lab = Lab::bridged("hbd");
    let before = snapshot(&[&lab.container_ns]);
    let files_before = run_netrt_files();
    let annotations = [("net.egress", "4mbit")];
    let real = Bundle::create("nrt-hbundle", &BundleSpec::new(Some(&lab.netns_path()), &annotations));
    let mut holder = process_in_netns(&lab.container_ns);
    let scratch = std::env::temp_dir().join("netrt-hostile-bundles");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let make = |name: &str| -> PathBuf {
        let dir = scratch.join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    };

    let linked = scratch.join("linked");
    std::os::unix::fs::symlink(&real.dir, &linked).unwrap();
    let config_link = make("config-link");
    std::os::unix::fs::symlink(real.dir.join("config.json"), config_link.join("config.json")).unwrap();
    let zero_link = make("zero-link");
    std::os::unix::fs::symlink("/dev/zero", zero_link.join("config.json")).unwrap();
    let fifo = make("fifo");
    sh(&format!("mkfifo {}/config.json", fifo.display()));
    let huge = make("huge");
    let mut padding = String::from("{\"annotations\":{\"net.egress\":\"4mbit\"},\"x\":\"");
    padding.push_str(&"x".repeat(5 << 20));
    padding.push_str("\"}");
    fs::write(huge.join("config.json"), padding).unwrap();
    let not_json = make("not-json");
    fs::write(not_json.join("config.json"), "annotations: net.egress=4mbit\n").unwrap();
    let directory = make("directory");
    fs::create_dir_all(directory.join("config.json")).unwrap();

    let cases: [(&Path, &str); 7] = [
        (&linked, "is a symbolic link"),
        (&config_link, "is a symbolic link"),
        (&zero_link, "is a symbolic link"),
        (&fifo, "is not a regular file"),
        (&huge, "is larger than 4 MiB"),
        (&not_json, "is not valid"),
        (&directory, "is not a regular file"),
    ];
    for (bundle, reason) in cases {
        let (ok, stderr) = run(&hook_binary(), &["createRuntime"], &state("nrt-hbundle", holder.id(), bundle));
        assert!(!ok && stderr.contains(reason), "hook, bundle {}: {stderr}", bundle.display());
        if bundle == linked.as_path() {
            continue; // the wrapper follows the engine's bundle path as runc does
        }
        let log = scratch.join("wrapper.log");
        let (ok, stderr) = run(
            &wrapper_binary(),
            &["--log", log.to_str().unwrap(), "create", "--bundle", bundle.to_str().unwrap(), "nrt-hbundle"],
            b"",
        );
        assert!(!ok && stderr.contains(reason), "wrapper, bundle {}: {stderr}", bundle.display());
    }
    let _ = holder.kill();
    let _ = holder.wait();
    sh_quiet("runc delete -f nrt-hbundle");
    assert_eq!(run_netrt_files(), files_before, "nothing new under /run/netrt");
    assert_same_host!(snapshot(&[&lab.container_ns]), before, "nothing created");
    let _ = fs::remove_dir_all(&scratch);
}
