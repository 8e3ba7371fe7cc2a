//! A real S3-protocol server on loopback for the archive tests: `s3s-fs` (objects are files under
//! a temporary directory), served over HTTP with signature checks. It can be stopped and started
//! again on the same port, keeping its objects, to simulate a storage outage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const ACCESS_KEY: &str = "slowburn-test-access";
pub const SECRET_KEY: &str = "slowburn-test-secret-key-0123456789";

pub struct S3Server {
    root: tempfile::TempDir,
    addr: SocketAddr,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl S3Server {
    /// Starts a server with one (empty) bucket.
    pub async fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(bucket)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = S3Server {
            root,
            addr,
            running: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let fs = s3s_fs::FileSystem::new(self.root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Connections live in this set: stopping the server drops them all, so a client's
            // pooled keep-alive connection fails like one to a crashed server would.
            let mut connections = JoinSet::new();
            loop {
                let socket = tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = conn.await;
                });
            }
            connections.abort_all();
        });
        self.running = Some((stop, task));
    }

    /// Stops answering: the listener closes and open connections are cut.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Starts again on the same port, with the same objects.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.serve(listener);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen on {} again: {last:?}", self.addr);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding `bucket`'s objects (s3s-fs stores each object as a file).
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.path().join(bucket)
    }

    /// The standard AWS variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}
