//! The nginx configuration the README shows (`docs/nginx-cache.conf`: HLS and the live state
//! cached, everything else passed through), with the addresses of a given setup filled in:
//! what the tests and benchmarks run, so the file people copy is the file that is tested.

/// The `http { }`-level configuration for an nginx at `listen` in front of the Fieldcast at
/// `upstream`, its cache in `cache_dir`.
pub fn nginx_config(upstream: &str, listen: &str, cache_dir: &std::path::Path) -> String {
    include_str!("../../../docs/nginx-cache.conf")
        .replace("listen 80;", &format!("listen {listen};"))
        .replace("server 127.0.0.1:8080;", &format!("server {upstream};"))
        .replace(
            "/var/cache/nginx/fieldcast",
            &cache_dir.display().to_string(),
        )
}

/// A whole `nginx.conf` around [`nginx_config`], for a foreground nginx run by root with
/// every file under `dir` (tests and benchmarks): one process, so its CPU is its own.
pub fn nginx_main_config(upstream: &str, listen: &str, dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "user root;\nmaster_process off;\nworker_processes 1;\ndaemon off;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\nworker_rlimit_nofile 65536;\n\
         events {{ worker_connections 32768; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         {}\n}}\n",
        nginx_config(upstream, listen, &dir.join("cache"))
    )
}

/// A whole `nginx.conf` for a foreground nginx-rtmp run by root with every file under `dir`:
/// one `live` application on `127.0.0.1:port` (`application` adds lines inside it), and
/// `http` (a whole `http { }` block, or nothing). The restream test's destination and the
/// benchmarks' RTMP peer.
pub fn nginx_rtmp_config(
    dir: &std::path::Path,
    port: u16,
    application: &str,
    http: &str,
) -> String {
    let d = dir.display();
    format!(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         error_log {d}/logs/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n\
             application live {{\n      live on;\n      play_restart on;\n{application}    }}\n  }}\n}}\n{http}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_configuration_gets_the_given_addresses() {
        let conf = nginx_config(
            "127.0.0.1:9000",
            "127.0.0.1:9001",
            std::path::Path::new("/c"),
        );
        assert!(conf.contains("server 127.0.0.1:9000;"));
        assert!(conf.contains("listen 127.0.0.1:9001;"));
        assert!(conf.contains("proxy_cache_path /c "));
        assert!(conf.contains("proxy_cache_lock on;"));
    }
}
