public import Foundation

/// Tiny HTTP/1.0 requests over a plain socket, for notifications to local receivers
/// (Alertmanager, webhooks): bounded by a timeout, so a receiver that is down costs a refused
/// connection, never a hung loop.
public enum PlainHTTP {
    public struct Response: Sendable {
        public let status: Int
        public let body: Data
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func request(_ method: String, _ url: String, body: Data? = nil, contentType: String = "application/json",
                               timeout: Double = 2) -> Result<Response, Failure>
    {
        guard let target = CheckRunner.parse(url: url) else { return .failure(Failure(description: "cannot parse \(url)")) }
        let deadline = Date().addingTimeInterval(timeout)
        let fd: Int32
        switch CheckRunner.connect(host: target.host, port: target.port, deadline: deadline) {
        case .success(let made): fd = made
        case .failure(let error): return .failure(Failure(description: error.message))
        }
        defer { close(fd) }
        var request = Data("\(method) \(target.path) HTTP/1.0\r\nHost: \(CheckRunner.authority(target.host, target.port))\r\nUser-Agent: stet\r\n".utf8)
        if let body {
            request.append(Data("Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n".utf8))
        }
        request.append(Data("Connection: close\r\n\r\n".utf8))
        if let body { request.append(body) }
        var sent = 0
        while sent < request.count {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, CheckRunner.remaining(deadline)) == 1 else {
                return .failure(Failure(description: "timed out sending to \(url)"))
            }
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return .failure(Failure(description: "send to \(url): \(String(cString: strerror(errno)))")) }
            sent += n
        }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while response.count < 4 << 20 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, CheckRunner.remaining(deadline)) == 1 else {
                return .failure(Failure(description: "timed out waiting for \(url)"))
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        return Self.response(response, from: url)
    }

    /// The status and body of the answer `bytes` that `url` sent: a status line, headers, an
    /// empty line, then the body up to where the connection closed.
    package static func response(_ bytes: Data, from url: String) -> Result<Response, Failure> {
        guard let split = bytes.range(of: Data("\r\n\r\n".utf8)) else {
            return .failure(Failure(description: "\(url) sent no HTTP response"))
        }
        let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
        let fields = head.prefix { $0 != "\r" }.split(separator: " ")
        guard fields.count >= 2, let status = CheckRunner.statusCode(fields[1]) else {
            return .failure(Failure(description: "\(url) sent no HTTP status"))
        }
        return .success(Response(status: status, body: Data(bytes[split.upperBound...])))
    }
}
