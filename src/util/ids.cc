#include "util/ids.h"

#include <openssl/sha.h>
#include <sys/random.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace fleetwatch {
namespace {

template <size_t N>
std::array<uint8_t, N> RandomBytes() {
  std::array<uint8_t, N> bytes{};
  size_t filled = 0;
  while (filled < N) {
    ssize_t n = getrandom(bytes.data() + filled, N - filled, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");  // impossible on Linux >= 3.17
    filled += static_cast<size_t>(n);
  }
  return bytes;
}

std::string Hex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string NewId() {
  auto b = RandomBytes<16>();
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  std::string h = Hex(b.data(), b.size());
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string NewToken() {
  auto b = RandomBytes<32>();
  return Hex(b.data(), b.size());
}

std::string Sha256Hex(std::string_view data) {
  std::array<uint8_t, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return Hex(digest.data(), digest.size());
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Length is not secret; contents are.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace fleetwatch
