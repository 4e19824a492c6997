import COpenSSL

/// The libcrypto that Stet signs and hashes with, as it names itself at run time (the library
/// loaded, which a host's security updates change, not the headers Stet was built against).
public enum CryptoLibrary {
    public static var version: String {
        guard let text = stet_openssl_version() else { return "unknown" }
        return String(cString: text)
    }
}
