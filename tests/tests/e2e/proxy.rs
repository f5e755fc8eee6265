//! A loopback TCP proxy for deployment tests: round-robin over several upstreams (a layer-4
//! balancer, skipping an upstream that refuses connections, as a health-checking one does),
//! and a switch that cuts every connection and refuses new ones (a database going away).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Shared {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
    cut: AtomicBool,
    /// Connections handed to each upstream.
    served: Vec<AtomicUsize>,
    open: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstreams: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the test proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            served: upstreams.iter().map(|_| AtomicUsize::new(0)).collect(),
            upstreams,
            next: AtomicUsize::new(0),
            cut: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if s.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let conn = tokio::spawn(relay(s.clone(), client));
                if let Ok(mut open) = s.open.lock() {
                    open.retain(|h| !h.is_finished());
                    open.push(conn);
                }
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.shared.open.lock() {
            for h in open.drain(..) {
                h.abort();
            }
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections handed to each upstream so far.
    pub fn served(&self) -> Vec<usize> {
        self.shared
            .served
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn relay(s: Arc<Shared>, mut client: TcpStream) {
    let n = s.upstreams.len();
    let first = s.next.fetch_add(1, Ordering::SeqCst);
    for i in 0..n {
        let which = (first + i) % n;
        if let Ok(mut upstream) = TcpStream::connect(s.upstreams[which]).await {
            s.served[which].fetch_add(1, Ordering::SeqCst);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
    }
}
