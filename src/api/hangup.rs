//! Noticing that a client hung up while its request waits (a long `GET /pubsub/messages/…`):
//! actix-web notices only when it writes the answer, so a waiter whose client left would hold its
//! socket for the whole wait. Each connection keeps a duplicate of its socket, and a waiting
//! handler peeks at it: end of stream means the client is gone.

use std::{
    any::Any,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::Arc,
    time::Duration,
};

use actix_web::{dev::Extensions, HttpRequest};

/// How often a waiting handler looks at its client's socket.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// A connection's socket, duplicated when it was accepted (so its number cannot be reused for
/// another connection while a handler still looks at it).
#[derive(Clone, Debug)]
struct ClientSocket(Arc<OwnedFd>);

/// `HttpServer::on_connect`: keeps a duplicate of every plain TCP connection's socket.
pub(crate) fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match stream.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(ClientSocket(Arc::new(fd)));
        }
        Err(error) => tracing::debug!(%error, "cannot watch a connection for hang-ups"),
    }
}

/// Resolves once the client of `request` has closed its end of the connection; never, when the
/// connection cannot be watched (then the wait ends at its own bound).
pub(crate) async fn client_gone(request: &HttpRequest) {
    let Some(socket) = request.conn_data::<ClientSocket>().cloned() else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    loop {
        ticks.tick().await;
        if has_hung_up(&socket.0) {
            return;
        }
    }
}

/// Whether the peer closed the stream: a peek that reads end of stream. Bytes waiting (a
/// pipelined request) or nothing yet both mean it is still there.
fn has_hung_up(socket: &OwnedFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer we own, and a descriptor we hold open.
    let read = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if read == 0 {
        return true;
    }
    read < 0 && {
        let error = std::io::Error::last_os_error();
        matches!(
            error.raw_os_error(),
            Some(libc::ECONNRESET | libc::ENOTCONN | libc::EPIPE)
        )
    }
}
