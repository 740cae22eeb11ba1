#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::store {

// Encrypts the secrets the server keeps in its database (agent tokens) with AES-256-GCM, so that
// a copy of the database alone reveals none of them. The key lives apart from the database: in
// its own 0600 file beside it, or with the operator (FLEETWATCH_ENCRYPTION_KEY).
//
// Stored form: "enc:v1:" + base64(nonce[12] | ciphertext | tag[16]), a fresh random 96-bit nonce
// per encryption. Thread-safe: immutable after construction.
class SecretCipher {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr std::string_view kPrefix = "enc:v1:";

  explicit SecretCipher(const std::array<uint8_t, kKeyBytes>& key) : key_(key) {}

  // Internal when the random source or the cipher fails.
  Result<std::string> Encrypt(std::string_view plaintext) const;
  // The plaintext of a value Encrypt made with the same key. InvalidArgument when `stored` is not
  // in the stored form; FailedPrecondition when it does not authenticate (another key, or bytes
  // changed).
  Result<std::string> Decrypt(std::string_view stored) const;

  // Whether `stored` is in the encrypted form (says nothing about which key).
  static bool IsEncrypted(std::string_view stored) { return stored.starts_with(kPrefix); }

 private:
  std::array<uint8_t, kKeyBytes> key_;
};

// A key written as 64 hex digits or as base64 (padded or not) of exactly 32 bytes; surrounding
// blanks and a trailing newline are ignored. InvalidArgument naming `source` otherwise (the key
// itself is never echoed).
Result<std::array<uint8_t, SecretCipher::kKeyBytes>> ParseSecretKey(std::string_view text,
                                                                    std::string_view source);

// The key in `path`, or, when the file does not exist, a new random key written there as base64
// (created O_EXCL with mode 0600 before anything is written). A file that is group- or
// world-accessible, or whose content is not a key, is FailedPrecondition; I/O failures are
// Internal. Not thread-safe with respect to other writers of `path` (one server per data dir).
Result<std::array<uint8_t, SecretCipher::kKeyBytes>> LoadOrCreateKeyFile(
    const std::filesystem::path& path);

// Base64 (RFC 4648, padded) of `bytes`, and back. DecodeBase64 also accepts text without its
// padding; anything outside the alphabet is InvalidArgument. Thread-safe (pure functions).
std::string EncodeBase64(std::string_view bytes);
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace fleetwatch::store
