#include "store/secret_cipher.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace fleetwatch::store {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
using Key = std::array<uint8_t, SecretCipher::kKeyBytes>;

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

std::string EncodeBase64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(bytes),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> DecodeBase64(std::string_view text) {
  std::string padded(text);
  while (padded.size() % 4 != 0) padded += '=';
  size_t padding = 0;
  while (padding < 2 && padding < padded.size() && padded[padded.size() - 1 - padding] == '=') {
    ++padding;
  }
  for (size_t i = 0; i + padding < padded.size(); ++i) {
    const char c = padded[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return InvalidArgument("not base64");
  }
  std::string out(3 * (padded.size() / 4), '\0');
  // EVP_DecodeBlock counts padding as zero bytes; they are cut below.
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(padded),
                                static_cast<int>(padded.size()));
  if (n < 0 || static_cast<size_t>(n) < padding) return InvalidArgument("not base64");
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

Result<std::string> SecretCipher::Encrypt(std::string_view plaintext) const {
  std::string sealed(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(sealed.data());
  unsigned char* body = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return Internal("no random bytes for a nonce");
  CipherContext ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), body, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), body + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, body + plaintext.size()) !=
          1) {
    return Internal("AES-256-GCM encryption failed");
  }
  return std::string(kPrefix) + EncodeBase64(sealed);
}

Result<std::string> SecretCipher::Decrypt(std::string_view stored) const {
  if (!IsEncrypted(stored)) return InvalidArgument("the value is not encrypted");
  Result<std::string> sealed = DecodeBase64(stored.substr(kPrefix.size()));
  if (!sealed.ok() || sealed->size() < kNonceBytes + kTagBytes) {
    return InvalidArgument("the encrypted value is malformed");
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed->data());
  const unsigned char* body = nonce + kNonceBytes;
  const size_t body_size = sealed->size() - kNonceBytes - kTagBytes;
  std::string plaintext(body_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  CipherContext ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len, body, static_cast<int>(body_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          const_cast<unsigned char*>(body + body_size)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out + len, &len) != 1) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return FailedPrecondition("the encrypted value does not decrypt with this key");
  }
  return plaintext;
}

Result<Key> ParseSecretKey(std::string_view text, std::string_view source) {
  text = Trim(text);
  Key key{};
  if (text.size() == 2 * key.size()) {
    bool hex = true;
    for (size_t i = 0; i < key.size() && hex; ++i) {
      const int hi = HexDigit(text[2 * i]);
      const int lo = HexDigit(text[2 * i + 1]);
      hex = hi >= 0 && lo >= 0;
      key[i] = static_cast<uint8_t>(hex ? hi * 16 + lo : 0);
    }
    if (hex) return key;
  }
  Result<std::string> bytes = DecodeBase64(text);
  if (!bytes.ok() || bytes->size() != key.size()) {
    if (bytes.ok()) OPENSSL_cleanse(bytes->data(), bytes->size());
    return InvalidArgument(std::string(source) +
                           " must hold a 32-byte key as 64 hex digits or as base64 (e.g. the "
                           "output of `openssl rand -base64 32`)");
  }
  std::memcpy(key.data(), bytes->data(), key.size());
  OPENSSL_cleanse(bytes->data(), bytes->size());
  return key;
}

Result<Key> LoadOrCreateKeyFile(const std::filesystem::path& path) {
  const std::string name = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    Key key{};
    if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
      return Internal("no random bytes for a new encryption key");
    }
    // O_EXCL: never follow or reuse what someone else put there; mode 0600 from the start.
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Internal("cannot create the key file " + name + ": " + ErrnoText());
    const std::string text =
        EncodeBase64(std::string_view(reinterpret_cast<const char*>(key.data()), key.size())) +
        "\n";
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool synced = written && ::fsync(fd) == 0;
    if (::close(fd) != 0 || !synced) {
      ::unlink(path.c_str());
      return Internal("cannot write the key file " + name + ": " + ErrnoText());
    }
    return key;
  }
  if (fd < 0) return Internal("cannot open the key file " + name + ": " + ErrnoText());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPrecondition("the key file " + name + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return FailedPrecondition("the key file " + name +
                              " is readable by others: run chmod 600 on it (and consider the key "
                              "leaked)");
  }
  char buffer[256];
  ssize_t n = ::read(fd, buffer, sizeof(buffer));
  ::close(fd);
  if (n < 0) return Internal("cannot read the key file " + name + ": " + ErrnoText());
  Result<Key> key =
      ParseSecretKey(std::string_view(buffer, static_cast<size_t>(n)), "the key file " + name);
  OPENSSL_cleanse(buffer, sizeof(buffer));
  if (!key.ok()) return FailedPrecondition(key.status().message());
  return key;
}

}  // namespace fleetwatch::store
