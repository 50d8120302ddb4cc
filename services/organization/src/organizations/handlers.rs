//! The `OrganizationService` handlers: each parses its request and calls
//! the flow in `tree`, `lifecycle`, `listing` or `crate::ownership`.

use super::*;
use crate::convert::{organization_to_proto, project_to_proto};
use tenantry_kit::names::OrganizationName;

impl OrganizationApi {
    /// Cancels or declines the ownership transfer a request names.
    async fn end_transfer<T>(
        &self,
        request: &Request<T>,
        name: &str,
        ending: crate::ownership::Ending,
    ) -> Result<Option<pb::OwnershipTransfer>, Status> {
        let caller = Caller::from_request(request)?;
        Ok(Some(self.0.end_transfer(&caller, name, ending).await?))
    }
}

#[tonic::async_trait]
impl pb::organization_service_server::OrganizationService for OrganizationApi {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let organization = crate::validate::present("organization", request.organization)?;
        let row = self
            .0
            .create_organization_or_release(&caller, organization, &request.request_id)
            .await?;
        let default_project = match request.with_default_project {
            true => self.0.create_default_project(&caller, &row).await?,
            false => None,
        };
        Ok(Response::new(pb::CreateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
            default_project: default_project.map(|(project, _)| project_to_proto(&project)),
        }))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let id = OrganizationName::parse("name", &request.get_ref().name)?.id;
        let row = self.0.readable_organization(&caller, &id).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (rows, next_page_token) = self
            .0
            .list_organizations(&caller, request.get_ref())
            .await?;
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: rows.iter().map(organization_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let organization = crate::validate::present("organization", request.organization)?;
        let row = self
            .0
            .update_organization(&caller, organization, request.update_mask)
            .await?;
        Ok(Response::new(pb::UpdateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .delete_organization(&caller, &r.name, &r.etag, r.force)
            .await?;
        Ok(Response::new(pb::DeleteOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn undelete_organization(
        &self,
        request: Request<pb::UndeleteOrganizationRequest>,
    ) -> Result<Response<pb::UndeleteOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .undelete_organization(&caller, &r.name, &r.etag)
            .await?;
        Ok(Response::new(pb::UndeleteOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn move_organization(
        &self,
        request: Request<pb::MoveOrganizationRequest>,
    ) -> Result<Response<pb::MoveOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self.0.move_organization(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::MoveOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn deactivate_organization(
        &self,
        request: Request<pb::DeactivateOrganizationRequest>,
    ) -> Result<Response<pb::DeactivateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_state(&caller, &r.name, &r.etag, Some(&r.reason))
            .await?;
        Ok(Response::new(pb::DeactivateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn reactivate_organization(
        &self,
        request: Request<pb::ReactivateOrganizationRequest>,
    ) -> Result<Response<pb::ReactivateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self.0.set_state(&caller, &r.name, &r.etag, None).await?;
        Ok(Response::new(pb::ReactivateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn get_organization_ancestry(
        &self,
        request: Request<pb::GetOrganizationAncestryRequest>,
    ) -> Result<Response<pb::GetOrganizationAncestryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let rows = self.0.ancestry(&caller, &request.get_ref().name).await?;
        Ok(Response::new(pb::GetOrganizationAncestryResponse {
            ancestors: rows.iter().map(organization_to_proto).collect(),
        }))
    }

    async fn list_my_organizations(
        &self,
        request: Request<pb::ListMyOrganizationsRequest>,
    ) -> Result<Response<pb::ListMyOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (organizations, next_page_token) =
            self.0.my_organizations(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListMyOrganizationsResponse {
            organizations,
            next_page_token,
        }))
    }

    async fn transfer_ownership(
        &self,
        request: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self.0.start_transfer(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::TransferOwnershipResponse {
            ownership_transfer: Some(transfer),
        }))
    }

    async fn get_ownership_transfer(
        &self,
        request: Request<pb::GetOwnershipTransferRequest>,
    ) -> Result<Response<pb::GetOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self
            .0
            .get_transfer(&caller, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::GetOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
        }))
    }

    async fn accept_ownership_transfer(
        &self,
        request: Request<pb::AcceptOwnershipTransferRequest>,
    ) -> Result<Response<pb::AcceptOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let (transfer, org) = self.0.accept_transfer(&caller, &r.name, &r.token).await?;
        Ok(Response::new(pb::AcceptOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
            organization: Some(organization_to_proto(&org)),
        }))
    }

    async fn cancel_ownership_transfer(
        &self,
        request: Request<pb::CancelOwnershipTransferRequest>,
    ) -> Result<Response<pb::CancelOwnershipTransferResponse>, Status> {
        let ending = crate::ownership::Ending::Cancel;
        let name = &request.get_ref().name;
        let ownership_transfer = self.end_transfer(&request, name, ending).await?;
        Ok(Response::new(pb::CancelOwnershipTransferResponse {
            ownership_transfer,
        }))
    }

    async fn decline_ownership_transfer(
        &self,
        request: Request<pb::DeclineOwnershipTransferRequest>,
    ) -> Result<Response<pb::DeclineOwnershipTransferResponse>, Status> {
        let ending = crate::ownership::Ending::Decline;
        let name = &request.get_ref().name;
        let ownership_transfer = self.end_transfer(&request, name, ending).await?;
        Ok(Response::new(pb::DeclineOwnershipTransferResponse {
            ownership_transfer,
        }))
    }
}
