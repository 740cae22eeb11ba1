#include "ui/assets.h"

namespace fleetwatch::ui {

const EmbeddedAsset* FindAsset(std::string_view path) {
  // A dozen files: a scan is as fast as a map and needs no initialisation.
  for (const EmbeddedAsset& asset : EmbeddedAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace fleetwatch::ui
