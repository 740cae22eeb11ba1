#pragma once

#include "store/row_mapping.h"

// The SQLite store's names for the shared row mapping (row_mapping.h).
namespace fleetwatch::store::sqlite {

using rows::DecryptAgentToken;
using rows::GpuIndicesFromJson;
using rows::GpuIndicesToJson;
using rows::Int64ListFromText;
using rows::Int64ListToText;
using rows::kFinishedJobStatuses;
using rows::kFinishedRunStatuses;
using rows::kSelectFleet;
using rows::kSelectInstance;
using rows::kSelectJob;
using rows::kSelectProject;
using rows::kSelectRun;
using rows::kSelectUser;
using rows::OptionalText;
using rows::ParseColumn;
using rows::ParseOptionalColumn;
using rows::Placeholders;
using rows::PointsOf;
using rows::ReadFleet;
using rows::ReadInstance;
using rows::ReadJob;
using rows::ReadProject;
using rows::ReadRun;
using rows::ReadUser;
using rows::ResourcesFromJson;
using rows::ResourcesToJson;
using rows::Sql;
using rows::WithContext;

}  // namespace fleetwatch::store::sqlite
